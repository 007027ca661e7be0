/*
 * fsbrain: Linux trojans, coin miners and reverse shells. Written for fsbrain (Apache-2.0).
 */

rule Linux_Miner_XMRig
{
    meta:
        description = "XMRig (Monero) coin miner binary or configuration"
        severity = 4
        label = "malware"
    strings:
        $name = "xmrig" nocase
        $s1 = "stratum+tcp://" ascii
        $s2 = "stratum+ssl://" ascii
        $s3 = "cryptonight" nocase
        $s4 = "randomx" nocase
        $s5 = "donate-level" ascii
        $s6 = "\"pools\"" ascii
        $s7 = "nicehash" nocase
    condition:
        ($name and 2 of ($s*)) or 4 of ($s*)
}

rule Linux_Reverse_Shell
{
    meta:
        description = "Reverse shell one-liner (bash /dev/tcp, nc -e, python/perl socket + dup2, socat exec, mkfifo pipe)"
        severity = 5
        label = "malware"
    strings:
        $bash = /(ba)?sh\s+-i\s*[>&]+\s*\/dev\/(tcp|udp)\/[\w.\-]+\/\d+/
        $devtcp = /exec\s+\d+<>\s*\/dev\/tcp\/[\w.\-]+\/\d+/
        $nc = /\b(nc|ncat|netcat)(\.traditional|\.openbsd)?\s+(-\w+\s+)*-e\s+\/bin\/(ba)?sh/
        $py = /socket\.socket\([^)]*\)[\s\S]{0,200}connect\([\s\S]{0,300}os\.dup2\(/
        $pl = /use\s+Socket;[\s\S]{0,300}(connect\(S|open\(STDIN,\s*["']>&S)/
        $socat = /socat\s+[^\n]{0,80}exec:["']?(\/bin\/)?(ba)?sh/ nocase
        $fifo = /mkfifo\s+\/tmp\/\w+\s*;\s*(cat|tail)[^\n]{0,60}\|\s*\/bin\/(ba)?sh[^\n]{0,80}\|\s*(nc|ncat|telnet)\s/
    condition:
        any of them
}

rule Linux_Trojan_Mirai
{
    meta:
        description = "Mirai/Gafgyt-family IoT DDoS bot strings"
        severity = 5
        label = "malware"
    strings:
        $m1 = "/bin/busybox MIRAI" ascii
        $m2 = "MIRAI: applet not found" ascii
        $g1 = "GETLOCALIP" ascii
        $g2 = "KILLATTK" ascii
        $g3 = "LOLNOGTFO" ascii
        $g4 = "HTTPFLOOD" ascii
        $g5 = "UDPRAW" ascii
        $g6 = "/bin/busybox" ascii
        $ua = "Mozilla/5.0" ascii
    condition:
        uint32(0) == 0x464C457F and (any of ($m*) or 3 of ($g*) or (2 of ($g*) and $ua))
}

rule Linux_Trojan_Kaiten
{
    meta:
        description = "Tsunami/Kaiten IRC bot"
        severity = 5
        label = "malware"
    strings:
        $a = "NOTICE %s :Kaiten" ascii
        $b = "NOTICE %s :TSUNAMI" ascii
        $c = "NOTICE %s :Spoofs" ascii
        $d = "NOTICE %s :Killing pid" ascii
    condition:
        2 of them
}

rule Linux_Miner_Dropper_Cron
{
    meta:
        description = "Cron or shell script that downloads and pipes a script to a shell while killing rival miners"
        severity = 4
        label = "malware"
    strings:
        $dl = /(curl|wget)\s[^\n|]{0,200}\|\s*(ba)?sh\b/
        $k1 = /pkill\s+(-9\s+)?-?f?\s*(xmrig|kinsing|kdevtmpfsi|minerd|cryptonight)/ nocase
        $k2 = /chattr\s+[-+]i\s+\/etc\/(crontab|ld\.so\.preload)|\/var\/spool\/cron/
        $k3 = "ld.so.preload" ascii
    condition:
        $dl and any of ($k*)
}

/*
 * fsbrain: PHP, JSP and ASP/ASPX webshells. Written for fsbrain (Apache-2.0).
 *
 * Webshells hand request input to a code-execution primitive. The rules look for that data flow
 * (request input -> eval/assert/system/Runtime.exec/Process.Start) in the few forms it takes, plus the
 * decode-then-eval chains used to hide it. They are meant for web roots; run them on source trees with
 * care (frameworks legitimately call exec functions, but not on raw request parameters).
 */

rule PHP_Webshell_Request_Exec
{
    meta:
        description = "PHP code passes request input straight to eval/assert/system-like functions (e.g. China Chopper one-liner)"
        severity = 5
        label = "webshell"
    strings:
        $php = /<\?(php|=|\s)/ nocase
        $direct = /\b(eval|assert|system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec|create_function)\s*\(\s*(@\s*)?(\$_(GET|POST|REQUEST|COOKIE|SERVER|FILES)|\$\{\s*['"]?_(GET|POST|REQUEST|COOKIE)|stripslashes\s*\(\s*\$_(GET|POST|REQUEST|COOKIE))/ nocase
        $varfunc = /\$_(GET|POST|REQUEST|COOKIE)\s*\[[^\]]{1,64}\]\s*\(\s*(@\s*)?\$_(GET|POST|REQUEST|COOKIE)/ nocase
        $callback = /\b(array_map|call_user_func(_array)?|array_filter|array_walk|usort|uasort|uksort|register_shutdown_function|register_tick_function)\s*\(\s*(\$_(GET|POST|REQUEST|COOKIE)|['"](assert|eval|system)['"])/ nocase
        $backtick = /`\s*\$_(GET|POST|REQUEST|COOKIE)\s*\[/ nocase
    condition:
        $php and any of ($direct, $varfunc, $callback, $backtick)
}

rule PHP_Webshell_Decode_Eval_Chain
{
    meta:
        description = "PHP eval/assert of decoded or decompressed data (obfuscated webshell loader)"
        severity = 5
        label = "webshell"
    strings:
        $php = /<\?(php|=|\s)/ nocase
        $chain = /\b(eval|assert)\s*\(\s*(@\s*)?(base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|strrev|convert_uudecode|hex2bin|urldecode|rawurldecode)\s*\(/ nocase
        $chain2 = /\b(eval|assert)\s*\(\s*(@\s*)?(base64_decode|gzinflate|gzuncompress|str_rot13|strrev)\s*\(\s*(base64_decode|gzinflate|gzuncompress|str_rot13|strrev|\$_(POST|GET|REQUEST|COOKIE))/ nocase
    condition:
        $php and ($chain2 or #chain >= 1 and filesize < 2MB)
}

rule PHP_Webshell_Preg_Replace_E
{
    meta:
        description = "PHP preg_replace with the /e modifier fed from request input (code execution)"
        severity = 5
        label = "webshell"
    strings:
        $php = /<\?(php|=|\s)/ nocase
        $pe = /preg_replace\s*\(\s*['"](.)[^'"]{0,200}\/[a-zA-Z]*e[a-zA-Z]*['"]\s*,/ nocase
        $req = /\$_(GET|POST|REQUEST|COOKIE)\s*\[/ nocase
    condition:
        $php and $pe and $req
}

rule PHP_Webshell_Known_Family
{
    meta:
        description = "Markers of well-known PHP webshell families (c99, r57, WSO/FilesMan, b374k, Weevely, ...)"
        severity = 5
        label = "webshell"
    strings:
        $php = /<\?(php|=|\s)/ nocase
        $a = "c99shell" nocase
        $b = "r57shell" nocase
        $c = "FilesMan" fullword
        $d = "b374k" nocase
        $e = "WSO " fullword
        $f = "$default_action = 'FilesMan'"
        $g = "Weevely" nocase
        $h = "phpspy" nocase
        $i = "safe_mode bypass" nocase
    condition:
        $php and (2 of ($a, $b, $c, $d, $e, $g, $h, $i) or $f)
}

rule JSP_Webshell_Runtime_Exec
{
    meta:
        description = "JSP runs a command taken from the request (Runtime.exec / ProcessBuilder)"
        severity = 5
        label = "webshell"
    strings:
        $jsp1 = "<%" ascii
        $jsp2 = "<jsp:" ascii
        $exec1 = /Runtime\s*\.\s*getRuntime\s*\(\s*\)\s*\.\s*exec\s*\(/
        $exec2 = /new\s+ProcessBuilder\s*\(/
        $req = /request\s*\.\s*(getParameter|getHeader|getInputStream|getReader)\s*\(/
        $direct = /exec\s*\(\s*request\s*\.\s*getParameter\s*\(/
    condition:
        ($jsp1 or $jsp2) and ($direct or (any of ($exec*) and $req))
}

rule JSP_Webshell_ClassLoader
{
    meta:
        description = "JSP defines classes from request bytes (Behinder/Godzilla-style memory shell loader)"
        severity = 5
        label = "webshell"
    strings:
        $jsp = "<%" ascii
        $cl = /extends\s+ClassLoader/
        $def = "defineClass" ascii
        $req = /request\s*\.\s*(getReader|getInputStream|getParameter)\s*\(/
        $crypto = "javax.crypto" ascii
    condition:
        $jsp and $def and $req and ($cl or $crypto)
}

rule ASP_Webshell_Eval_Request
{
    meta:
        description = "ASP/ASPX evaluates request input (China Chopper and similar one-liners)"
        severity = 5
        label = "webshell"
    strings:
        $asp = "<%" ascii
        $vb = /\b(eval|execute|executeglobal)\s*[\s(]\s*request\s*(\.\s*(form|querystring|item))?\s*[(\[]/ nocase
        $js = /\beval\s*\(\s*request\s*(\.\s*(item|form|querystring))?\s*[\[(][^\]\)]{1,64}[\])]\s*(,\s*["']unsafe["'])?/ nocase
    condition:
        $asp and ($vb or $js)
}

rule ASPX_Webshell_Process_Start
{
    meta:
        description = "ASPX starts a process with arguments taken from the request"
        severity = 5
        label = "webshell"
    strings:
        $aspx = /<%@\s*Page/ nocase
        $proc = /(Process\s*\.\s*Start|ProcessStartInfo)\s*\(/
        $req = /Request\s*(\.\s*(Form|QueryString|Params|Item))?\s*\[/
        $cmd = "cmd.exe" nocase
    condition:
        $aspx and $proc and $req and (filesize < 512KB or $cmd)
}

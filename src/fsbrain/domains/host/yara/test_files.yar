/*
 * fsbrain: anti-virus test files. Written for fsbrain (Apache-2.0).
 *
 * EICAR: the 68-byte EICAR test string is split in two halves here so that this rule file itself is
 * not an EICAR test file; the rule requires the second half to follow the first directly.
 * ClamAV: the "ClamAV test file" clam.exe (a 544-byte PE that shows a message box) as used by ClamAV's
 * own test suite, in plain form and in the text encodings it is found in (base64, hex in RTF objects).
 */

rule EICAR_Test_File
{
    meta:
        description = "EICAR anti-virus test file"
        severity = 2
        label = "malware"
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
    strings:
        $head = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
        $tail = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        for any i in (1..#head) : ($tail at @head[i] + 28)
}

rule ClamAV_Test_File
{
    meta:
        description = "ClamAV test file (clam.exe body)"
        severity = 2
        label = "malware"
    strings:
        // start of clam.exe's entry code: it XOR-decodes and prints its message
        $code = { BB 71 10 40 00 33 C0 50 50 8B F3 53 53 50 B0 29 40 30 04 66 AC 79 F9 BA 31 00 78 0D AD 50 FF 66 }
        $imp = "CLAMessageBoxA"
        $tag = "[CLAMAV]"
    condition:
        $code or ($imp and $tag)
}

rule ClamAV_Test_File_Encoded
{
    meta:
        description = "ClamAV test file (clam.exe) embedded base64- or hex-encoded (mail, HTML data URI, RTF object)"
        severity = 2
        label = "malware"
    strings:
        $b64_imp = "CLAMessageBoxA" base64
        $b64_tag = "[CLAMAV]" base64
        $hex_code = "bb7110400033c050508bf35353" nocase
        $hex_imp = "434c414d657373616765426f7841" nocase
    condition:
        ($b64_imp and $b64_tag) or $hex_code or $hex_imp
}

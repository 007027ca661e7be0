/*
 * fsbrain: packed forms of the ClamAV test file. Written for fsbrain (Apache-2.0).
 *
 * ClamAV's test corpus carries its harmless test program packed with several PE packers and inside
 * compiled AutoIt scripts. fsbrain unpacks UPX itself and ARJ/CHM/NSIS/LZX cabinets through 7-Zip; for
 * the packers it has no unpacker for, these rules match the *packed* bytes, as anti-virus vendors cover
 * packed samples. Each rule needs two 24-byte runs taken from the packed payload (the sections that
 * hold the compressed or encrypted test program, or the AutoIt script data), never from the packer's
 * own stub, so a different program packed with the same packer does not match, plus the packer's mark
 * where it leaves one (section name or script magic). They identify these particular packed files: a
 * re-packed or differently built test program needs its own signature (or an unpacker).
 */

rule ClamAV_Test_File_Packed_ASPack
{
    meta:
        description = "ClamAV test file packed with ASPack (clam-aspack.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = ".aspack"
        $p0 = { 31 A7 7E C7 08 0C FF AD 24 A2 7E 58 D3 18 B3 40 39 92 39 53 F4 87 C3 82 }  // clam-aspack.exe @0xa08
        $p1 = { 31 9C 6B 6C 68 46 EF 38 0C A1 70 25 84 15 19 11 1F DB FC C9 F2 BE 09 27 }  // clam-aspack.exe @0x608
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

rule ClamAV_Test_File_Packed_MEW
{
    meta:
        description = "ClamAV test file packed with MEW (clam-mew.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = "MEW"
        $p0 = { 6A E0 68 19 54 20 40 0A 1C 16 18 18 FF 15 14 11 33 C0 38 C2 10 29 CC 01 }  // clam-mew.exe @0x228
        $p1 = { 61 E0 67 0E F8 FF 9F 81 E0 07 90 AD 08 C4 1C 0E 0C 52 80 04 01 23 03 C3 }  // clam-mew.exe @0x3e0
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

rule ClamAV_Test_File_Packed_PESpin
{
    meta:
        description = "ClamAV test file packed with PESpin (clam-pespin.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = " KuNgBiM"
        $p0 = { EB 2A 3A 23 6E F4 DB 44 6C 95 88 76 01 E9 61 11 60 4F BE E1 3C DE E4 3B }  // clam-pespin.exe @0x400
        $p1 = { 5D DF 91 7A 0D 3F 94 B6 38 8F CA 47 0F ED F0 1B 27 C2 7D 39 D6 27 05 02 }  // clam-pespin.exe @0xa00
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

rule ClamAV_Test_File_Packed_Petite
{
    meta:
        description = "ClamAV test file packed with Petite (clam-petite.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = ".petite"
        $p0 = { 6A 06 F6 9D A0 D3 B2 22 F3 9E 5A 16 31 FD F3 E0 D0 22 23 F0 30 DF 12 08 }  // clam-petite.exe @0x800
        $p1 = { 53 38 3B 3E 3A 08 C3 89 AD 17 EC A3 90 18 4E C6 7E 77 37 15 09 36 0B 0C }  // clam-petite.exe @0xdb8
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

rule ClamAV_Test_File_Packed_Upack
{
    meta:
        description = "ClamAV test file packed with Upack (clam-upack.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $p0 = { 7D 4D 19 C0 B4 4C 8F B6 FD 10 71 E8 57 A7 3F FB 74 C1 E2 DD FC 7C 05 11 }  // clam-upack.exe @0x2b1
        $p1 = { A2 69 0D EA E6 F7 97 2E 09 3F 30 DE C1 26 C2 3E D4 9A 46 4C 0F 71 58 69 }  // clam-upack.exe @0x400
    condition:
        uint16(0) == 0x5A4D and $p0 and $p1
}

rule ClamAV_Test_File_Packed_WWPack32
{
    meta:
        description = "ClamAV test file packed with WWPack32 (clam-wwpack.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = ".WWP32"
        $p0 = { 03 00 00 80 03 F3 8D 0A 60 60 62 60 61 E0 67 F8 FF 9F 81 61 07 90 AD 08 }  // clam-wwpack.exe @0xa40
        $p1 = { 43 00 FF 6F 30 80 3B 01 00 00 00 E0 00 00 00 00 00 00 00 00 00 00 00 00 }  // clam-wwpack.exe @0xb80
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

rule ClamAV_Test_File_Packed_yC
{
    meta:
        description = "ClamAV test file packed with yoda's Crypter (yC) over UPX (clam-yc.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = "yC"
        $p0 = { C7 05 C3 A8 6F 7A 6E 54 8A 5A 7C 78 FF A9 F4 74 FD 03 1A A9 97 69 25 1B }  // clam-yc.exe @0x400
        $p1 = { 8C 3A 6F 7A 06 1C E4 27 BB 30 3A AE 62 CF A9 A9 7A 7A 7A 7A 7A 7A 7A 7A }  // clam-yc.exe @0x8a0
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

rule ClamAV_Test_File_Packed_AutoIt_EA05
{
    meta:
        description = "ClamAV test file packed with AutoIt v3 script (EA05) compiled with the test file inside, UPX-packed interpreter (clam.ea05.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = "AU3!EA05"
        $p0 = { 5F 88 FF D8 8A AD 99 8F 29 85 A1 AD 96 F6 16 71 3B C7 9D C7 C0 FB 59 25 }  // clam.ea05.exe @0x32850
        $p1 = { 68 DE 09 6D E2 CE F4 38 C2 1F 5A 3D 6D D3 DE DC 57 34 36 F3 4F EC 42 F0 }  // clam.ea05.exe @0x33af2
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

rule ClamAV_Test_File_Packed_AutoIt_EA06
{
    meta:
        description = "ClamAV test file packed with AutoIt v3 script (EA06) compiled with the test file inside, UPX-packed interpreter (clam.ea06.exe of ClamAV's test files)"
        severity = 2
        label = "malware"
        detection = "packed-form signature (no unpacker)"
    strings:
        $mark = "AU3!EA06"
        $p0 = { CE 3F 70 EF B9 68 07 F8 00 00 BB 55 0E F8 EB 55 A2 E9 28 68 CB 94 37 D5 }  // clam.ea06.exe @0x3dc50
        $p1 = { 1B 8A 8D BE 3C EA 5F A1 AB A6 0A BB 6C B3 49 32 E1 9B 6F 9B 68 2F 9F 14 }  // clam.ea06.exe @0x3ef80
    condition:
        uint16(0) == 0x5A4D and $mark and $p0 and $p1
}

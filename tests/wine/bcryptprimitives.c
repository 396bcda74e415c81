/* A Wine test fixture, never shipped (README.md "Windows", windows.md §2): Rust's standard library
 * (1.78+) imports ProcessPrng from bcryptprimitives.dll, which Wine 8.0 lacks, so every Rust .exe
 * fails to load there. Real Windows 10+ has the DLL. This one exports ProcessPrng and fills the
 * buffer through advapi32's RtlGenRandom (SystemFunction036). `make wine-shim` builds it with
 * mingw-w64 into target/wine/, where the Wine tests put it beside the .exe. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

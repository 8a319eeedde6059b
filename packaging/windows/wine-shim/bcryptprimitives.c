/* Test-time shim for wine 8.0 only, never shipped: Rust's standard library on Windows imports
 * ProcessPrng from bcryptprimitives.dll, which wine 8.0 lacks. This fills the buffer from
 * RtlGenRandom (advapi32's SystemFunction036) instead. */
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

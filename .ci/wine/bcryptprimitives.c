/*
 * A stand-in for Windows' bcryptprimitives.dll, for Wine 8 (Debian 12),
 * which lacks it. Go >= 1.22 programs import ProcessPrng from it to read
 * random bytes; this one forwards to BCryptGenRandom, which Wine has.
 * Built by .ci/wine-test.sh with mingw-w64:
 *   x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll \
 *       bcryptprimitives.c bcryptprimitives.def -lbcrypt
 */
#include <windows.h>
#include <bcrypt.h>

/* ProcessPrng fills buf with n random bytes. Like Windows' own, it reports
 * success: Go treats a failure here as fatal anyway. */
BOOL WINAPI ProcessPrng(PBYTE buf, SIZE_T n)
{
	while (n > 0) {
		ULONG chunk = n > 0x40000000 ? 0x40000000 : (ULONG)n;
		if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, buf, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
			return FALSE;
		buf += chunk;
		n -= chunk;
	}
	return TRUE;
}

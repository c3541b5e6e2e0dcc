// The fp32 FMA rate one core really reaches, for taylor_fast.bench.peaks' measured CPU peak: 12
// independent chains of FMAs, enough to cover the FMA latency of every x86 core with two units,
// at the widest vector width the compiler flags allow. Measured rather than derived because a
// guest under a hypervisor sees the nominal clock, not the boost clock the cores really run at.
// peaks.py runs one copy per thread at once (the all-core rate, with the all-core clock).
//
//   cc -O2 -march=native fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak [iterations]
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define STORE _mm512_storeu_ps
#elif defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define STORE _mm256_storeu_ps
#else
#error "needs FMA (compile with -march=native on a CPU that has it)"
#endif

enum { CHAINS = 12 };

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const long iterations = argc > 1 ? atol(argv[1]) : 200000000;
  vec acc[CHAINS];
  const vec x = SET1(0.999999f), y = SET1(1e-7f);
  for (int i = 0; i < CHAINS; i++) acc[i] = SET1((float)i);
  const double start = seconds();
  for (long n = 0; n < iterations; n++) {
#pragma GCC unroll 12
    for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], x, y);
  }
  const double elapsed = seconds() - start;
  float lanes[LANES], checksum = 0;  // keeps the chains alive
  for (int i = 0; i < CHAINS; i++) {
    STORE(lanes, acc[i]);
    for (int j = 0; j < LANES; j++) checksum += lanes[j];
  }
  printf("gflops %.3f bits %d checksum %g\n", iterations * (double)CHAINS * LANES * 2 / elapsed / 1e9,
         LANES * 32, checksum);
  return 0;
}

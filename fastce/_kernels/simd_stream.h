/*
 * Non-temporal (streaming) stores of a gradient block: a gradient too big
 * for the caches is written to memory without each line being read first
 * (a regular store's read-for-ownership) and without evicting the input the
 * next tiles will read.  The gradient is formed in a cache-resident buffer,
 * its target entries fixed there, and copied out here: values are copied,
 * never computed, so the bits are the buffer's.  Used by the rows that keep
 * their exponentials (index_tile_kept): B, F and B64's loss + gradient ran
 * 1.08-1.21x faster.  Tried and left out (A/B medians, same run):
 *   - long rows (C), each 2048-class block formed in a buffer and copied
 *     out: 0.97-0.99x -- C's loss + gradient is bound by its second exp;
 *   - K-dim positions (D), the tile formed and fixed in a buffer, each
 *     class's span copied out: 0.84-0.88x;
 *   - the binary losses (E) through a buffer of their 16384-element tile,
 *     which spills out of L1: 0.85-0.94x.
 *
 * Part of the SIMD primitives (see simd_impl.h): included once per (dtype,
 * instruction set), no include guard.  x86 only; elsewhere plain copies.
 */

#if defined(__AVX512F__)
#define FCE_STREAM_BYTES 64
#elif defined(__AVX__)
#define FCE_STREAM_BYTES 32
#elif defined(__SSE2__)
#define FCE_STREAM_BYTES 16
#else
#define FCE_STREAM_BYTES 0
#endif

/* dst[0..n) = src[0..n): element copies up to dst's vector alignment, then
 * vector loads (src may be unaligned) and streaming stores, then the tail.
 * A dst not aligned to its element (possible for a NumPy view) is copied
 * with memcpy. */
static FCE_INLINE void FN(stream_copy)(const T *src, T *dst, npy_intp n)
{
#if FCE_STREAM_BYTES
    const npy_intp lanes = FCE_STREAM_BYTES / (npy_intp)sizeof(T);
    npy_intp k = 0;
    if ((uintptr_t)dst % sizeof(T)) {
        memcpy(dst, src, (size_t)n * sizeof(T));
        return;
    }
    while (k < n && ((uintptr_t)(dst + k) % FCE_STREAM_BYTES)) {
        dst[k] = src[k];
        k++;
    }
    for (; k + lanes <= n; k += lanes) {
#if defined(__AVX512F__) && FCE_F64
        _mm512_stream_pd(dst + k, _mm512_loadu_pd(src + k));
#elif defined(__AVX512F__)
        _mm512_stream_ps(dst + k, _mm512_loadu_ps(src + k));
#elif defined(__AVX__) && FCE_F64
        _mm256_stream_pd(dst + k, _mm256_loadu_pd(src + k));
#elif defined(__AVX__)
        _mm256_stream_ps(dst + k, _mm256_loadu_ps(src + k));
#elif FCE_F64
        _mm_stream_pd(dst + k, _mm_loadu_pd(src + k));
#else
        _mm_stream_ps(dst + k, _mm_loadu_ps(src + k));
#endif
    }
    for (; k < n; k++) dst[k] = src[k];
#else
    memcpy(dst, src, (size_t)n * sizeof(T));
#endif
}

/* Streaming stores are weakly ordered: a tile that made them ends with a
 * fence, so the gradient is in memory before another thread (or the
 * caller, after the parallel loop) reads it. */
static FCE_INLINE void FN(stream_fence)(void)
{
#if FCE_STREAM_BYTES
    _mm_sfence();
#endif
}

#undef FCE_STREAM_BYTES

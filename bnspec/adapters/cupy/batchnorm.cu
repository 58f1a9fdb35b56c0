// The batch-norm kernels of bnspec's ``cupy`` adapter (bnspec/adapters/cupy/kernels.py says what
// each does). This text is the same for every variant: kernels.py prepends a prelude that defines
// store_t, acc_t, the BN_* constants, bn_load/bn_store and bn_sqrt/bn_fma for one KernelSpec. It
// includes no header, so NVRTC compiles it as is and tests/cuda_emulator.py builds it for the CPU.
struct alignas(BN_VEC * sizeof(store_t)) bn_vec_t { store_t v[BN_VEC]; };

// What one block works on. A block is (group, split): group = a channel (planar) or a tile of
// tx_count channel vectors (rows), counted from channel c0 (a launch may cover some channels only);
// split = a contiguous range [lo, hi) of items, an item being one vector of a channel's values
// (planar) or one row (rows). Threads are (tx, ty): tx picks the channel vector (always 0 in
// planar), ty strides over the items.
struct bn_tile_t {
    int group, split, tx, ty, ty_count, chan;  // chan: first channel of this thread's lanes
    long long lo, hi;
    bool active;  // the thread owns real channels (a rows tile may overhang C)
};

__device__ __forceinline__ bn_tile_t bn_tile(int blk, long long outer, int channels, long long inner,
                                             int splits, long long chunk, int tx_count, int c0) {
    bn_tile_t t;
    const int groups = (int)gridDim.x / splits;  // split-major: the groups of one split run side by side
    t.split = blk / groups;
    t.group = blk - t.split * groups;
    long long items = BN_ROWS ? outer : outer * (inner / BN_VEC);
    t.lo = (long long)t.split * chunk;
    t.hi = t.lo + chunk < items ? t.lo + chunk : items;
    t.tx = (int)threadIdx.x % tx_count;
    t.ty = (int)threadIdx.x / tx_count;
    t.ty_count = BN_BLOCK / tx_count;
    t.chan = c0 + (BN_ROWS ? (t.group * tx_count + t.tx) * BN_VEC : t.group);
    t.active = t.chan < channels;
    return t;
}

// Index (in vectors) of an item's vector. Planar items are numbered row-major over (outer, inner/VEC);
// the host keeps a channel's item count below 2^31, so the division is 32-bit.
__device__ __forceinline__ long long bn_vector_index(const bn_tile_t& t, long long item, int channels,
                                                     long long inner) {
    if (BN_ROWS) return (item * channels + t.chan) / BN_VEC;
    unsigned int per_row = (unsigned int)(inner / BN_VEC);
    unsigned int o = (unsigned int)item / per_row;
    unsigned int i = (unsigned int)item - o * per_row;
    return ((long long)o * channels + t.chan) * (inner / BN_VEC) + i;
}

__device__ __forceinline__ int bn_lane_channel(const bn_tile_t& t, int e) { return BN_ROWS ? t.chan + e : t.chan; }

// Chan et al.'s merge of Welford states (count, mean, M2): b into a. With a empty it copies b exactly.
__device__ __forceinline__ void bn_merge(acc_t (&a)[3], const acc_t (&b)[3]) {
    if (b[0] == (acc_t)0) return;
    acc_t n = a[0] + b[0];
    acc_t r = b[0] / n;
    acc_t d = b[1] - a[1];
    a[1] = bn_fma(d, r, a[1]);
    a[2] = a[2] + b[2] + d * d * (a[0] * r);
    a[0] = n;
}

// Gradient partials (sum dy, sum dy * (x - mean)) merge by addition.
__device__ __forceinline__ void bn_merge(acc_t (&a)[2], const acc_t (&b)[2]) {
    a[0] += b[0];
    a[1] += b[1];
}

// Merge the states of the threads sharing a tx, in a fixed tree over ty; thread ty = 0 ends with
// the result. Every thread of the block must call it (it synchronises).
template <int W>
__device__ __forceinline__ void bn_tile_reduce(acc_t (&st)[BN_LANES][W], acc_t* sh, const bn_tile_t& t,
                                               int tx_count) {
    const int tid = (int)threadIdx.x;
#pragma unroll
    for (int e = 0; e < BN_LANES; ++e)
#pragma unroll
        for (int w = 0; w < W; ++w) sh[(w * BN_LANES + e) * BN_BLOCK + tid] = st[e][w];
    for (int stride = t.ty_count / 2; stride > 0; stride /= 2) {
        __syncthreads();
        if (t.ty < stride) {
            const int other = tid + stride * tx_count;
            for (int e = 0; e < BN_LANES; ++e) {
                acc_t b[W];
                for (int w = 0; w < W; ++w) b[w] = sh[(w * BN_LANES + e) * BN_BLOCK + other];
                bn_merge(st[e], b);
                for (int w = 0; w < W; ++w) sh[(w * BN_LANES + e) * BN_BLOCK + tid] = st[e][w];
            }
        }
    }
    __syncthreads();
}

// Write this block's partials, count the block in; the last block of the group to arrive gets
// true, with every partial of its channels merged (in split order, then the fixed tree) in st.
// The partials are read through volatile loads: from L2, never from a stale L1 line.
template <int W>
__device__ __forceinline__ bool bn_last_block_merge(acc_t (&st)[BN_LANES][W], acc_t* sh, int* last,
                                                    const bn_tile_t& t, int channels, int splits, int tx_count,
                                                    acc_t* part, unsigned int* counters) {
    bn_tile_reduce<W>(st, sh, t, tx_count);
    if (t.ty == 0 && t.active)
        for (int e = 0; e < BN_LANES; ++e)
            for (int w = 0; w < W; ++w)
                part[((long long)t.split * channels + bn_lane_channel(t, e)) * W + w] = st[e][w];
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) *last = atomicAdd(&counters[t.group], 1u) == (unsigned int)(splits - 1);
    __syncthreads();
    if (!*last) return false;
    __threadfence();
    if (threadIdx.x == 0) counters[t.group] = 0u;  // left at zero for the next launch
    for (int e = 0; e < BN_LANES; ++e)
        for (int w = 0; w < W; ++w) st[e][w] = (acc_t)0;
    if (t.active)
        for (int s = t.ty; s < splits; s += t.ty_count)
            for (int e = 0; e < BN_LANES; ++e) {
                acc_t b[W];
                for (int w = 0; w < W; ++w)
                    b[w] = *(volatile const acc_t*)&part[((long long)s * channels + bn_lane_channel(t, e)) * W + w];
                bn_merge(st[e], b);
            }
    bn_tile_reduce<W>(st, sh, t, tx_count);
    return true;
}

// Load up to BN_UNROLL vectors of the thread's items from base; returns how many were in range.
__device__ __forceinline__ int bn_load_batch(acc_t (&v)[BN_UNROLL][BN_VEC], const store_t* __restrict__ p,
                                             const bn_tile_t& t, long long base, int channels, long long inner) {
    const bn_vec_t* pv = reinterpret_cast<const bn_vec_t*>(p);
    int k = 0;
#pragma unroll
    for (int u = 0; u < BN_UNROLL; ++u) {
        long long item = base + (long long)u * t.ty_count;
        if (item < t.hi) {
            bn_vec_t a = pv[bn_vector_index(t, item, channels, inner)];
#pragma unroll
            for (int e = 0; e < BN_VEC; ++e) v[u][e] = bn_load(a.v[e]);
            k = u + 1;
        }
    }
    return k;
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK) bn_stats(
        const store_t* __restrict__ x, long long outer, int channels, long long inner, int splits,
        long long chunk, int tx_count, int c0, acc_t* part, unsigned int* counters, acc_t* coef,
        const acc_t* __restrict__ weight, const acc_t* __restrict__ bias, acc_t* running_mean,
        acc_t* running_var, int update_running, acc_t factor, acc_t keep, acc_t bessel, acc_t eps) {
    __shared__ acc_t sh[3 * BN_LANES * BN_BLOCK];
    __shared__ int last;
    const bn_tile_t t = bn_tile((int)blockIdx.x, outer, channels, inner, splits, chunk, tx_count, c0);
    acc_t st[BN_LANES][3];
    for (int e = 0; e < BN_LANES; ++e) st[e][0] = st[e][1] = st[e][2] = (acc_t)0;
    if (t.active) {
        for (long long base = t.lo + t.ty; base < t.hi; base += (long long)BN_UNROLL * t.ty_count) {
            acc_t v[BN_UNROLL][BN_VEC];
            const int k = bn_load_batch(v, x, t, base, channels, inner);
            // The batch's own mean and M2 (two passes over registers), then one Chan merge.
            if (BN_ROWS) {  // lane e is channel chan + e; the batch is k rows
                const acc_t nb = (acc_t)k;
#pragma unroll
                for (int e = 0; e < BN_LANES; ++e) {
                    acc_t s = 0, q = 0;
#pragma unroll
                    for (int u = 0; u < BN_UNROLL; ++u) if (u < k) s += v[u][e];
                    const acc_t mb = s / nb;
#pragma unroll
                    for (int u = 0; u < BN_UNROLL; ++u) if (u < k) { acc_t d = v[u][e] - mb; q = bn_fma(d, d, q); }
                    const acc_t b[3] = {nb, mb, q};
                    bn_merge(st[e], b);
                }
            } else {  // one channel: the batch is k * VEC values
                const acc_t nb = (acc_t)(k * BN_VEC);
                acc_t s = 0, q = 0;
#pragma unroll
                for (int u = 0; u < BN_UNROLL; ++u)
#pragma unroll
                    for (int e = 0; e < BN_VEC; ++e) if (u < k) s += v[u][e];
                const acc_t mb = s / nb;
#pragma unroll
                for (int u = 0; u < BN_UNROLL; ++u)
#pragma unroll
                    for (int e = 0; e < BN_VEC; ++e) if (u < k) { acc_t d = v[u][e] - mb; q = bn_fma(d, d, q); }
                const acc_t b[3] = {nb, mb, q};
                bn_merge(st[0], b);
            }
        }
    }
    if (!bn_last_block_merge<3>(st, sh, &last, t, channels, splits, tx_count, part, counters)) return;
    if (t.ty != 0 || !t.active) return;
    for (int e = 0; e < BN_LANES; ++e) {
        const int c = bn_lane_channel(t, e);
        const acc_t mean = st[e][1];
        const acc_t var = st[e][2] / st[e][0];  // biased: M2 / m (BN-TRAIN-2)
        const acc_t invstd = (acc_t)1 / bn_sqrt(var + eps);  // eps inside the root (BN-TRAIN-3)
        coef[BN_MEAN * channels + c] = mean;
        coef[BN_INVSTD * channels + c] = invstd;
        coef[BN_SCALE * channels + c] = weight[c] * invstd;
        coef[BN_SHIFT * channels + c] = bias[c];
        if (update_running) {  // (1 - a) * old + a * new: a = 1 gives new exactly (BN-RUN-1..3)
            running_mean[c] = bn_fma(factor, mean, keep * running_mean[c]);
            running_var[c] = bn_fma(factor, var * bessel, keep * running_var[c]);
        }
    }
}

extern "C" __global__ void bn_eval_prepare(int channels, acc_t* coef, const acc_t* __restrict__ weight,
                                           const acc_t* __restrict__ bias, const acc_t* __restrict__ running_mean,
                                           const acc_t* __restrict__ running_var, acc_t eps) {
    const int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= channels) return;
    const acc_t invstd = (acc_t)1 / bn_sqrt(running_var[c] + eps);
    coef[BN_MEAN * channels + c] = running_mean[c];
    coef[BN_INVSTD * channels + c] = invstd;
    coef[BN_SCALE * channels + c] = weight[c] * invstd;
    coef[BN_SHIFT * channels + c] = bias[c];
    coef[BN_P * channels + c] = (acc_t)0;
    coef[BN_Q * channels + c] = (acc_t)0;
}

// The per-channel coefficients of a thread's lanes; planar lanes all read the one channel.
__device__ __forceinline__ void bn_lane_coef(acc_t (&out)[BN_VEC], const acc_t* coef, int row,
                                             const bn_tile_t& t, int channels) {
    for (int e = 0; e < BN_VEC; ++e) out[e] = coef[row * channels + (BN_ROWS ? t.chan + e : t.chan)];
}

// The elementwise kernels visit the blocks in reverse, so that they start where the reduction
// before them ended, on data still in L2.
extern "C" __global__ void __launch_bounds__(BN_BLOCK) bn_normalize(
        const store_t* __restrict__ x, store_t* __restrict__ y, long long outer, int channels, long long inner,
        int splits, long long chunk, int tx_count, int c0, const acc_t* __restrict__ coef) {
    const bn_tile_t t = bn_tile((int)(gridDim.x - 1 - blockIdx.x), outer, channels, inner, splits, chunk, tx_count, c0);
    if (!t.active) return;
    acc_t mean[BN_VEC], scale[BN_VEC], shift[BN_VEC];
    bn_lane_coef(mean, coef, BN_MEAN, t, channels);
    bn_lane_coef(scale, coef, BN_SCALE, t, channels);
    bn_lane_coef(shift, coef, BN_SHIFT, t, channels);
    bn_vec_t* yv = reinterpret_cast<bn_vec_t*>(y);
    for (long long base = t.lo + t.ty; base < t.hi; base += (long long)BN_UNROLL * t.ty_count) {
        acc_t v[BN_UNROLL][BN_VEC];
        const int k = bn_load_batch(v, x, t, base, channels, inner);
#pragma unroll
        for (int u = 0; u < BN_UNROLL; ++u) {
            if (u >= k) break;
            bn_vec_t out;
#pragma unroll
            for (int e = 0; e < BN_VEC; ++e) out.v[e] = bn_store(bn_fma(v[u][e] - mean[e], scale[e], shift[e]));
            yv[bn_vector_index(t, base + (long long)u * t.ty_count, channels, inner)] = out;
        }
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK) bn_grad_reduce(
        const store_t* __restrict__ x, const store_t* __restrict__ dy, long long outer, int channels,
        long long inner, int splits, long long chunk, int tx_count, int c0, acc_t* part, unsigned int* counters,
        acc_t* coef, acc_t* grad_weight, acc_t* grad_bias, int through_stats, acc_t count) {
    __shared__ acc_t sh[2 * BN_LANES * BN_BLOCK];
    __shared__ int last;
    const bn_tile_t t = bn_tile((int)blockIdx.x, outer, channels, inner, splits, chunk, tx_count, c0);
    acc_t sum_dy[BN_VEC], sum_dyx[BN_VEC], mean[BN_VEC];  // per vector position, folded into lanes below
    for (int e = 0; e < BN_VEC; ++e) sum_dy[e] = sum_dyx[e] = (acc_t)0;
    if (t.active) {
        bn_lane_coef(mean, coef, BN_MEAN, t, channels);
        for (long long base = t.lo + t.ty; base < t.hi; base += (long long)BN_UNROLL * t.ty_count) {
            acc_t xv[BN_UNROLL][BN_VEC], gv[BN_UNROLL][BN_VEC];
            const int k = bn_load_batch(xv, x, t, base, channels, inner);
            bn_load_batch(gv, dy, t, base, channels, inner);
#pragma unroll
            for (int u = 0; u < BN_UNROLL; ++u)
#pragma unroll
                for (int e = 0; e < BN_VEC; ++e) if (u < k) {
                    sum_dy[e] += gv[u][e];
                    sum_dyx[e] = bn_fma(gv[u][e], xv[u][e] - mean[e], sum_dyx[e]);
                }
        }
    }
    acc_t st[BN_LANES][2];
    for (int e = 0; e < BN_LANES; ++e) st[e][0] = st[e][1] = (acc_t)0;
    for (int e = 0; e < BN_VEC; ++e) {  // planar: every position is the one channel
        st[BN_ROWS ? e : 0][0] += sum_dy[e];
        st[BN_ROWS ? e : 0][1] += sum_dyx[e];
    }
    if (!bn_last_block_merge<2>(st, sh, &last, t, channels, splits, tx_count, part, counters)) return;
    if (t.ty != 0 || !t.active) return;
    for (int e = 0; e < BN_LANES; ++e) {
        const int c = bn_lane_channel(t, e);
        const acc_t invstd = coef[BN_INVSTD * channels + c];
        const acc_t dgamma = st[e][1] * invstd;  // sum dy * x_hat (BN-GRAD-2)
        grad_weight[c] = dgamma;
        grad_bias[c] = st[e][0];
        coef[BN_P * channels + c] = through_stats ? st[e][0] / count : (acc_t)0;  // mean(dy)
        coef[BN_Q * channels + c] = through_stats ? invstd * (dgamma / count) : (acc_t)0;  // invstd * mean(dy x_hat)
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK) bn_grad_input(
        const store_t* __restrict__ x, const store_t* __restrict__ dy, store_t* __restrict__ dx, long long outer,
        int channels, long long inner, int splits, long long chunk, int tx_count, int c0, const acc_t* __restrict__ coef) {
    const bn_tile_t t = bn_tile((int)(gridDim.x - 1 - blockIdx.x), outer, channels, inner, splits, chunk, tx_count, c0);
    if (!t.active) return;
    acc_t mean[BN_VEC], scale[BN_VEC], p[BN_VEC], q[BN_VEC];
    bn_lane_coef(mean, coef, BN_MEAN, t, channels);
    bn_lane_coef(scale, coef, BN_SCALE, t, channels);
    bn_lane_coef(p, coef, BN_P, t, channels);
    bn_lane_coef(q, coef, BN_Q, t, channels);
    bn_vec_t* dxv = reinterpret_cast<bn_vec_t*>(dx);
    for (long long base = t.lo + t.ty; base < t.hi; base += (long long)BN_UNROLL * t.ty_count) {
        acc_t xv[BN_UNROLL][BN_VEC], gv[BN_UNROLL][BN_VEC];
        const int k = bn_load_batch(xv, x, t, base, channels, inner);
        bn_load_batch(gv, dy, t, base, channels, inner);
#pragma unroll
        for (int u = 0; u < BN_UNROLL; ++u) {
            if (u >= k) break;
            bn_vec_t out;
#pragma unroll
            for (int e = 0; e < BN_VEC; ++e)  // gamma invstd (dy - p - x_hat q), x_hat q = (x - mean) invstd q
                out.v[e] = bn_store(scale[e] * bn_fma(-(xv[u][e] - mean[e]), q[e], gv[u][e] - p[e]));
            dxv[bn_vector_index(t, base + (long long)u * t.ty_count, channels, inner)] = out;
        }
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK) bn_grad_input_const(
        const store_t* __restrict__ dy, store_t* __restrict__ dx, long long outer, int channels, long long inner,
        int splits, long long chunk, int tx_count, int c0, const acc_t* __restrict__ coef) {
    const bn_tile_t t = bn_tile((int)(gridDim.x - 1 - blockIdx.x), outer, channels, inner, splits, chunk, tx_count, c0);
    if (!t.active) return;
    acc_t scale[BN_VEC];
    bn_lane_coef(scale, coef, BN_SCALE, t, channels);
    bn_vec_t* dxv = reinterpret_cast<bn_vec_t*>(dx);
    for (long long base = t.lo + t.ty; base < t.hi; base += (long long)BN_UNROLL * t.ty_count) {
        acc_t gv[BN_UNROLL][BN_VEC];
        const int k = bn_load_batch(gv, dy, t, base, channels, inner);
#pragma unroll
        for (int u = 0; u < BN_UNROLL; ++u) {
            if (u >= k) break;
            bn_vec_t out;
#pragma unroll
            for (int e = 0; e < BN_VEC; ++e) out.v[e] = bn_store(scale[e] * gv[u][e]);
            dxv[bn_vector_index(t, base + (long long)u * t.ty_count, channels, inner)] = out;
        }
    }
}

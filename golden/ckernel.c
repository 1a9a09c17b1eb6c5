/* golden's datapath in C, for one spec: the same step as golden/datapath.py, block by block as golden/kernels.py.
 *
 * Not a standalone file: golden.ckernel.c_source(spec) writes the spec's definitions in front of it (the types
 * W, S, US, x_t, v_t, o_t; the choices KIND, SOFT, DECAY, ROUND_FIRST, FLOAT32, RESET0, ROUND, the widths,
 * shifts and flags; the constants VTH, VR, RTAU, VT_A, VR_A, SPIKE_OUT and their float32 forms; WIDE; the
 * codes of the kinds and rounding modes, from golden.spec's enums), so that every constant folds in as in
 * a specialised golden kernel. Stage bits of the overflow counts: 1 align, 2 leak, 4 charge, 8 reset, 16 v.
 * Written from golden's spec, not from Qualia's templates. */
#ifndef GOLDEN_SPEC
#error "golden/ckernel.c needs a spec's definitions first: golden.ckernel.c_source(spec) writes them"
#endif
#include <math.h>
#include <stdint.h>

#if WIDE  /* a 64-bit wrapping accumulator: wrap as the machine does, without signed overflow */
#define ADD(a, b) ((W)((uint64_t)(a) + (uint64_t)(b)))
#define SUB(a, b) ((W)((uint64_t)(a) - (uint64_t)(b)))
#define MUL(a, b) ((W)((uint64_t)(a) * (uint64_t)(b)))
#else      /* exact: no intermediate value overflows W */
#define ADD(a, b) ((W)((a) + (b)))
#define SUB(a, b) ((W)((a) - (b)))
#define MUL(a, b) ((W)((a) * (b)))
#endif
#define POW2(s) ((W)((uint64_t)1 << (s)))

/* n narrowed to a signed `bits`-wide integer, wrapping or saturating; *o set on overflow. */
static inline W narrow(W n, int bits, int wrap, int *o) {
    if (bits >= 64) return n;  /* (only with a 64-bit W) */
    const W hi = (W)(((uint64_t)1 << (bits - 1)) - 1), lo = (W)(-hi - 1);
    const int out = (n < lo) | (n > hi);
    *o |= out;
    if (!wrap) return n < lo ? lo : n > hi ? hi : n;
    return !out ? n : (W)((S)((US)(S)n << (8 * sizeof(S) - bits)) >> (8 * sizeof(S) - bits));
}
#define A(n, o) narrow((n), ACC_BITS, A_WRAP, (o))
#define N(n, o) narrow((n), V_BITS, V_WRAP, (o))

static inline int round_up(int above, int tie, int inexact, int negative, int odd) {
    switch (ROUND) {
    case TRN: return 0;
    case TRN_ZERO: return inexact & negative;
    case TRN_INF: return inexact;
    case RND: return above | tie;
    case RND_ZERO: return above | (tie & negative);
    case RND_MIN_INF: return above;
    case RND_INF: return above | (tie & !negative);
    default: return above | (tie & odd);  /* RND_CONV */
    }
}

/* R(n, s): n * 2**-s rounded; RND adds the half LSB in the accumulator. */
static inline W shift_round(W n, int s, int *o) {
    if (s <= 0) return A(MUL(n, POW2(-s)), o);
    if (ROUND == RND) return A(ADD(n, POW2(s - 1)), o) >> s;
    W q = n >> s, rem = SUB(n, MUL(q, POW2(s))), half = POW2(s - 1);
    return ADD(q, round_up(rem > half, rem == half, rem != 0, n < 0, q & 1));
}

static inline W quantize(float h, int *o) {  /* Qualia's quantizer: floor(y + 0.5) in float32 for RND */
    float y = h * INV_SC_V;
    if (ROUND == RND) {
        float r = floorf(y + 0.5f);
        if (sizeof(W) == 8) r = r < -R_LIM ? -R_LIM : r > R_LIM ? R_LIM : r;
        return N((W)r, o);
    }
    double yd = y, f = floor(yd), rem = yd - f, lim = R_LIM;
    double r = f + round_up(rem > 0.5, rem == 0.5, rem != 0.0, yd < 0.0, fabs(fmod(f, 2.0)) == 1.0);
    if (sizeof(W) == 8) r = r < -lim ? -lim : r > lim ? lim : r;
    return N((W)r, o);
}

/* The float32 step is written branch-free (every candidate computed, then selected): gcc
 * vectorises its overflow counts only so. */
static inline W fire_rounded(W v1, int *spike, int *ovf) {  /* round_then_fire */
    int o = 0;
    const int s = v1 >= VTH;
    const W v2 = N(SUB(v1, VTH), &o);
    *spike = s;
    *ovf |= (s & SOFT) ? o << 4 : 0;
    return !s ? v1 : SOFT ? v2 : (W)VR;
}

static inline W step(W v, W x, int *spike, int *ovf) {
    int o = 0, o2 = 0;
    if (FLOAT32) {
        const float vf = (float)v * SC_V, xf = (float)x * SC_IN;
        float h;
        if (KIND != KIND_LIF) h = vf + xf;
        else if (DECAY) h = RESET0 ? vf + (xf - vf) / TAU_F : vf + (xf - (vf - VR_F)) / TAU_F;
        else h = RESET0 ? vf * DECAY_F + xf : (vf - (vf - VR_F) / TAU_F) + xf;
        if (ROUND_FIRST) {
            const W v1 = quantize(h, &o);
            *ovf = o << 4;
            return fire_rounded(v1, spike, ovf);
        }
        const int s = h >= VTH_F;
        const W q = quantize(s & SOFT ? h - VTH_F : h, &o);
        *spike = s;
        *ovf = (s & !SOFT) ? 0 : o << 4;
        return (s & !SOFT) ? (W)VR : q;
    }
    int oa = 0, ol = 0, oc = 0;
    const W P = A(MUL(v, POW2(SH_V)), &oa), X = A(MUL(x, POW2(SH_IN)), &oa);
    W H;
    if (KIND != KIND_LIF) H = A(ADD(P, X), &oc);
    else {
        W d = A(SUB(P, VR_A), &oc);
        if (DECAY) d = A(SUB(X, d), &oc);
        const W leak = shift_round(A(MUL(d, RTAU), &ol), LEAK_S, &ol);
        if (DECAY) H = A(ADD(P, leak), &oc);
        else H = A(ADD(A(SUB(P, leak), &oc), X), &oc);
    }
    *ovf = oa | ol << 1 | oc << 2;
    if (ROUND_FIRST) {
        const W v1 = N(shift_round(H, SH_V, &o), &o);
        *ovf |= o << 4;
        return fire_rounded(v1, spike, ovf);
    }
    *spike = H >= VT_A;
    if (*spike && !SOFT) return (W)VR;
    if (*spike) {
        H = A(SUB(H, VT_A), &o2);
        *ovf |= o2 << 3;
    }
    const W v1 = N(shift_round(H, SH_V, &o), &o);
    *ovf |= o << 4;
    return v1;
}

/* Neurons lo..hi of a time-major (T, N) layer, block by block; overflow counts added to counts[5]. */
void golden_c(int64_t T, int64_t Nn, int64_t lo, int64_t hi, const x_t *restrict x, v_t *restrict v,
              o_t *restrict out, v_t *restrict vt, uint8_t *restrict spikes, int64_t *restrict counts) {
    for (int64_t b = lo; b < hi; b += BLOCK) {
        const int64_t m = hi - b < BLOCK ? hi - b : BLOCK;
        v_t *restrict vb = v + b;
        for (int64_t t = 0; t < T; t++) {
            const x_t *restrict xt = x + t * Nn + b;
            o_t *restrict ot = out + t * Nn + b;
            v_t *restrict tt = vt + t * Nn + b;
            uint8_t *restrict st = spikes + t * Nn + b;
            int32_t k0 = 0, k1 = 0, k2 = 0, k3 = 0, k4 = 0;
            for (int64_t n = 0; n < m; n++) {
                int s = 0, ovf = 0;
                const W v1 = step((W)vb[n], (W)xt[n], &s, &ovf);
                vb[n] = (v_t)v1;
                tt[n] = (v_t)v1;
                ot[n] = s ? (o_t)SPIKE_OUT : (o_t)0;
                st[n] = (uint8_t)s;
                k0 += ovf & 1;
                k1 += (ovf >> 1) & 1;
                k2 += (ovf >> 2) & 1;
                k3 += (ovf >> 3) & 1;
                k4 += (ovf >> 4) & 1;
            }
            counts[0] += k0;
            counts[1] += k1;
            counts[2] += k2;
            counts[3] += k3;
            counts[4] += k4;
        }
    }
}

/* The same, the neurons shared among `threads` OpenMP threads (in parts of at most BLOCK). */
void golden_c_omp(int64_t T, int64_t Nn, const x_t *restrict x, v_t *restrict v, o_t *restrict out,
                  v_t *restrict vt, uint8_t *restrict spikes, int64_t *restrict counts, int threads) {
    const int64_t blocks = (Nn + BLOCK - 1) / BLOCK, nb = blocks > threads ? blocks : threads;
    int64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : c0, c1, c2, c3, c4)
    for (int64_t i = 0; i < nb; i++) {
        int64_t c[5] = {0, 0, 0, 0, 0};
        golden_c(T, Nn, Nn * i / nb, Nn * (i + 1) / nb, x, v, out, vt, spikes, c);
        c0 += c[0], c1 += c[1], c2 += c[2], c3 += c[3], c4 += c[4];
    }
    counts[0] += c0, counts[1] += c1, counts[2] += c2, counts[3] += c3, counts[4] += c4;
}

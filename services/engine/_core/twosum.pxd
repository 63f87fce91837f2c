# Compensated summation shared by the kernels (cimported; inline, so nothing is linked).
#
# A running sum is kept as an unevaluated pair (s, c): Knuth's TwoSum makes the rounding
# error of every addition exact, and it is accumulated in c, so s + c stays within an ulp
# or two of the exact sum over millions of terms. Never compile with -ffast-math (it would
# fold the error terms away).


cdef inline void acc(double* s, double* c, double x) noexcept nogil:
    # TwoSum: s + x = t + err exactly; keep t in s and add err to c.
    cdef double a = s[0]
    cdef double t = a + x
    cdef double bp = t - a
    c[0] += (a - (t - bp)) + (x - bp)
    s[0] = t

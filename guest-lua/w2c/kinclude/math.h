/*
 * The compiled guest's <math.h> in the kernel build (freestanding, soft-float): what wasm2c's
 * output uses. The functions that need code are the Rust object's (kmod-wasmi/ffi, over the
 * libm crate, soft-float like the rest of the module); the rest are compiler builtins.
 */
#ifndef LP_KINCLUDE_MATH_H
#define LP_KINCLUDE_MATH_H
double lp_w2c_floor(double x);
double lp_w2c_ceil(double x);
double lp_w2c_trunc(double x);
double lp_w2c_sqrt(double x);
double lp_w2c_rint(double x);
float lp_w2c_floorf(float x);
float lp_w2c_ceilf(float x);
float lp_w2c_truncf(float x);
float lp_w2c_sqrtf(float x);
float lp_w2c_rintf(float x);
#define floor lp_w2c_floor
#define ceil lp_w2c_ceil
#define trunc lp_w2c_trunc
#define sqrt lp_w2c_sqrt
#define nearbyint lp_w2c_rint /* wasm rounds to nearest even, as rint in the default mode */
#define floorf lp_w2c_floorf
#define ceilf lp_w2c_ceilf
#define truncf lp_w2c_truncf
#define sqrtf lp_w2c_sqrtf
#define nearbyintf lp_w2c_rintf
#define fabs __builtin_fabs
#define fabsf __builtin_fabsf
#define copysign __builtin_copysign
#define copysignf __builtin_copysignf
#define isnan __builtin_isnan
#define signbit __builtin_signbit
#define NAN __builtin_nanf("")
#define INFINITY __builtin_inff()
#endif

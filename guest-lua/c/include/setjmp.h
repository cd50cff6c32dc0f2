/* The guest has no setjmp/longjmp (lp_conf.h replaces Lua's use of them); ldo.c still
 * includes this header. */

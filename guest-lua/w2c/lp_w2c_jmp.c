/*
 * setjmp and longjmp for the compiled guest (wasm-rt.h), x86-64 System V: the kernel has none,
 * and lpctl uses these too so that its tests run the kernel's.
 *
 * lp_setjmp saves the callee-saved registers, the caller's stack pointer and the return
 * address. lp_longjmp restores them and returns to that address by pushing it and returning,
 * never by an indirect jump: under the kernel's IBT an indirect jump must land on an endbr64,
 * which a call's return address is not, and a return is not subject to it. With return thunks
 * (the kernel's RETHUNK, -DLP_W2C_RETHUNK) every `ret` goes through __x86_return_thunk, as the
 * compiler's own returns do. Both entry points start with endbr64 (a no-op without CET).
 */
#if !defined(__x86_64__)
#error "the compiled engine's setjmp/longjmp are written for x86-64"
#endif

#ifdef LP_W2C_RETHUNK
#define LP_RET "jmp __x86_return_thunk\n"
#else
#define LP_RET "ret\n"
#endif

#ifdef LP_W2C_KERNEL
/* objtool skips lp_longjmp (it switches stacks by design), as STACK_FRAME_NON_STANDARD does */
#define LP_NON_STANDARD(f)                                        \
  ".pushsection .discard.func_stack_frame_non_standard, \"aw\"\n" \
  ".quad " f "\n"                                                 \
  ".popsection\n"
#else
#define LP_NON_STANDARD(f) ""
#endif

__asm__(".text\n"
        ".p2align 4\n"
        ".globl lp_setjmp\n"
        ".type lp_setjmp, @function\n"
        "lp_setjmp:\n"
        "  endbr64\n"
        "  movq %rbx, 0(%rdi)\n"
        "  movq %rbp, 8(%rdi)\n"
        "  movq %r12, 16(%rdi)\n"
        "  movq %r13, 24(%rdi)\n"
        "  movq %r14, 32(%rdi)\n"
        "  movq %r15, 40(%rdi)\n"
        "  leaq 8(%rsp), %rdx\n" /* the caller's %rsp once this returns */
        "  movq %rdx, 48(%rdi)\n"
        "  movq (%rsp), %rdx\n" /* the return address */
        "  movq %rdx, 56(%rdi)\n"
        "  xorl %eax, %eax\n"
        "  " LP_RET
        ".size lp_setjmp, .-lp_setjmp\n"
        "\n"
        ".p2align 4\n"
        ".globl lp_longjmp\n"
        ".type lp_longjmp, @function\n"
        "lp_longjmp:\n"
        "  endbr64\n"
        "  movl %esi, %eax\n" /* setjmp returns v, and never 0 for a jump */
        "  testl %eax, %eax\n"
        "  jnz 1f\n"
        "  incl %eax\n"
        "1:\n"
        "  movq 0(%rdi), %rbx\n"
        "  movq 8(%rdi), %rbp\n"
        "  movq 16(%rdi), %r12\n"
        "  movq 24(%rdi), %r13\n"
        "  movq 32(%rdi), %r14\n"
        "  movq 40(%rdi), %r15\n"
        "  movq 48(%rdi), %rsp\n"
        "  pushq 56(%rdi)\n" /* back where the return address was: a plain return */
        "  " LP_RET
        ".size lp_longjmp, .-lp_longjmp\n" LP_NON_STANDARD("lp_longjmp"));

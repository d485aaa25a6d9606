/* Bare-metal start for bench/lx7 on QEMU's `esp32s3` machine (`-kernel`, no ROM bootloader).
 *
 * What the Rust side needs before its first `entry`: a vector table with the six window
 * overflow/underflow handlers (the windowed ABI spills register frames through them),
 * WINDOWBASE/WINDOWSTART naming one live frame, PS with WOE set and EXCM clear, the FPU and the
 * PIE coprocessor enabled (CPENABLE is 0 at reset, so their first instruction would trap), a
 * stack, a zeroed .bss, and the ICOUNT debug counter running. Semihosting is the Xtensa ISS
 * `simcall` convention that QEMU implements with `-semihosting`: call number in a2
 * (1 = exit, 4 = write), arguments in a3.., result in a2.
 *
 * Offsets and register rules are the Xtensa ISA's (VECBASE-relative vector offsets of this
 * core: QEMU's core-esp32s3/core-isa.h, XCHAL_*_VECOFS).
 */
    .section .vectors, "ax"
    .align 1024
    .global _vector_table
_vector_table:
/* Spill/refill the frame's a0-a3 below the next frame's stack pointer. */
    .org _vector_table + 0x000          /* WindowOverflow4 */
    s32e    a0, a5, -16
    s32e    a1, a5, -12
    s32e    a2, a5, -8
    s32e    a3, a5, -4
    rfwo
    .org _vector_table + 0x040          /* WindowUnderflow4 */
    l32e    a0, a5, -16
    l32e    a1, a5, -12
    l32e    a2, a5, -8
    l32e    a3, a5, -4
    rfwu
/* 8- and 12-register frames: a0-a3 as above, the rest in the extra save area at the top of
 * the frame, found through the caller's stack pointer saved at [sp - 12]. */
    .org _vector_table + 0x080          /* WindowOverflow8 */
    s32e    a0, a9, -16
    l32e    a0, a1, -12
    s32e    a1, a9, -12
    s32e    a2, a9, -8
    s32e    a3, a9, -4
    s32e    a4, a0, -32
    s32e    a5, a0, -28
    s32e    a6, a0, -24
    s32e    a7, a0, -20
    rfwo
    .org _vector_table + 0x0c0          /* WindowUnderflow8 */
    l32e    a1, a9, -12
    l32e    a0, a9, -16
    l32e    a7, a1, -12
    l32e    a2, a9, -8
    l32e    a4, a7, -32
    l32e    a3, a9, -4
    l32e    a5, a7, -28
    l32e    a6, a7, -24
    l32e    a7, a7, -20
    rfwu
    .org _vector_table + 0x100          /* WindowOverflow12 */
    s32e    a0, a13, -16
    l32e    a0, a1, -12
    s32e    a1, a13, -12
    s32e    a2, a13, -8
    s32e    a3, a13, -4
    s32e    a4, a0, -48
    s32e    a5, a0, -44
    s32e    a6, a0, -40
    s32e    a7, a0, -36
    s32e    a8, a0, -32
    s32e    a9, a0, -28
    s32e    a10, a0, -24
    s32e    a11, a0, -20
    rfwo
    .org _vector_table + 0x140          /* WindowUnderflow12 */
    l32e    a1, a13, -12
    l32e    a0, a13, -16
    l32e    a11, a1, -12
    l32e    a2, a13, -8
    l32e    a4, a11, -48
    l32e    a8, a11, -32
    l32e    a3, a13, -4
    l32e    a5, a11, -44
    l32e    a6, a11, -40
    l32e    a7, a11, -36
    l32e    a9, a11, -28
    l32e    a10, a11, -24
    l32e    a11, a11, -20
    rfwu
/* Any other exception or interrupt is a bug in the program: report its cause and address
 * through semihosting and stop with exit status 2. */
    .org _vector_table + 0x180
    j       lx7_fatal_level
    .org _vector_table + 0x1c0
    j       lx7_fatal_level
    .org _vector_table + 0x200
    j       lx7_fatal_level
    .org _vector_table + 0x240
    j       lx7_fatal_level
    .org _vector_table + 0x280          /* Debug (ICOUNT wrap, breakpoints) */
    j       lx7_fatal_level
    .org _vector_table + 0x2c0          /* NMI */
    j       lx7_fatal_level
    .org _vector_table + 0x300          /* KernelException */
    j       lx7_fatal
    .org _vector_table + 0x340          /* UserException */
    j       lx7_fatal
    .org _vector_table + 0x3c0          /* DoubleException */
    j       lx7_fatal
    .org _vector_table + 0x400

    .section .text.lx7_start, "ax"
    .align 4
    .literal_position
    .literal .Lvec, _vector_table
    .literal .Lstack, __stack_top
    .literal .Lbss0, __bss_start
    .literal .Lbss1, __bss_end
    .literal .Lmain, lx7bench_main
    .literal .Lps, 0x00040020
    .global _start
_start:
    movi    a0, 0
    l32r    a2, .Lvec
    wsr     a2, vecbase
    movi    a2, 1
    wsr     a2, windowstart
    movi    a2, 0
    wsr     a2, windowbase
    rsync
    /* PS: WOE (bit 18) and UM (bit 5) set, INTLEVEL 0, EXCM clear. */
    movi    a2, 0
    wsr     a2, intenable
    l32r    a2, .Lps
    wsr     a2, ps
    rsync
    /* All coprocessors on: the FPU (CP0) and the PIE unit. */
    movi    a2, 0xff
    wsr     a2, cpenable
    rsync
    /* 64 bytes of headroom above the first frame for its spill areas. */
    l32r    a1, .Lstack
    addi    a1, a1, -64
    l32r    a2, .Lbss0
    l32r    a3, .Lbss1
    movi    a4, 0
1:  bgeu    a2, a3, 2f
    s32i    a4, a2, 0
    addi    a2, a2, 4
    j       1b
2:
    /* ICOUNT counts every instruction retired while CINTLEVEL < ICOUNTLEVEL (always, here). */
    movi    a2, 0
    wsr     a2, icount
    movi    a2, 1
    wsr     a2, icountlevel
    isync
    /* call4: this frame holds 4 registers, so spilling it (WindowOverflow4) never reads a
     * caller's stack pointer that does not exist. */
    l32r    a4, .Lmain
    callx4  a4
3:  j       3b

/* u32 lx7_icount(void): the instructions retired so far (wraps at 2^32; read differences). */
    .section .text.lx7_icount, "ax"
    .global lx7_icount
    .align 4
lx7_icount:
    entry   a1, 16
    rsr     a2, icount
    retw

/* void lx7_write(const u8 *buf, usize len): semihosting write to stdout. */
    .section .text.lx7_write, "ax"
    .global lx7_write
    .align 4
lx7_write:
    entry   a1, 16
    mov     a4, a2
    mov     a5, a3
    movi    a2, 4
    movi    a3, 1
    simcall
    retw

/* Semihosting file I/O for the PSRAM configuration (`lx7bench_big`), the host's open/read/
 * close through the same `simcall` (QEMU target/xtensa/xtensa-semi.c: open = 5, read = 3,
 * close = 6; flags and mode are passed to the host's open(2) as they are).
 * i32 lx7_open(const u8 *path, u32 flags, u32 mode) */
    .section .text.lx7_open, "ax"
    .global lx7_open
    .align 4
lx7_open:
    entry   a1, 16
    mov     a5, a4
    mov     a4, a3
    mov     a3, a2
    movi    a2, 5
    simcall
    retw

/* i32 lx7_read(i32 fd, u8 *buf, usize len): bytes read, 0 at the end, -1 on an error. */
    .section .text.lx7_read, "ax"
    .global lx7_read
    .align 4
lx7_read:
    entry   a1, 16
    mov     a5, a4
    mov     a4, a3
    mov     a3, a2
    movi    a2, 3
    simcall
    retw

/* i32 lx7_close(i32 fd) */
    .section .text.lx7_close, "ax"
    .global lx7_close
    .align 4
lx7_close:
    entry   a1, 16
    mov     a3, a2
    movi    a2, 6
    simcall
    retw

/* void lx7_exit(u32 code): ends QEMU with this exit status. */
    .section .text.lx7_exit, "ax"
    .global lx7_exit
    .align 4
lx7_exit:
    entry   a1, 16
    mov     a3, a2
    movi    a2, 1
    simcall
1:  j       1b

/* Fatal exception: write "EXCEPTION cause=.. pc=.. addr=.." (hex digits) and exit(2). Runs
 * with EXCM set, so no window exceptions can be taken here: registers only. */
    .section .text.lx7_fatal, "ax"
    .align 4
    .literal_position
    .literal .Lbuf, lx7_fatal_buf
    .literal .Lfatal_msg_lit, lx7_fatal_msg
lx7_fatal_level:
lx7_fatal:
    l32r    a6, .Lbuf
    rsr     a7, exccause
    s32i    a7, a6, 0
    rsr     a7, epc1
    s32i    a7, a6, 4
    rsr     a7, excvaddr
    s32i    a7, a6, 8
    rsr     a7, ps
    s32i    a7, a6, 12
    /* Write the message (the fields are dumped as raw words after it; run.sh decodes). */
    movi    a2, 4
    movi    a3, 2
    l32r    a4, .Lfatal_msg_lit
    movi    a5, 10
    simcall
    movi    a2, 4
    movi    a3, 2
    mov     a4, a6
    movi    a5, 16
    simcall
    movi    a2, 1
    movi    a3, 2
    simcall
1:  j       1b

    .section .rodata.lx7_fatal_msg, "a"
lx7_fatal_msg:
    .ascii  "EXCEPTION "
    .section .bss.lx7_fatal_buf, "aw", @nobits
    .align 4
lx7_fatal_buf:
    .space  16

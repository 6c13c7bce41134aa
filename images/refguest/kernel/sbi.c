/* SBI calls (OpenSBI or the emulator's host-side SBI). */
#include "kernel.h"

#define SBI_LEGACY_PUTCHAR 0x01
#define SBI_BASE  0x10
#define SBI_TIME  0x54494D45
#define SBI_IPI   0x735049
#define SBI_HSM   0x48534D
#define SBI_SRST  0x53525354

struct sbiret { long error, value; };

static struct sbiret sbi_call(long eid, long fid, long arg0, long arg1, long arg2)
{
    register long a0 __asm__("a0") = arg0;
    register long a1 __asm__("a1") = arg1;
    register long a2 __asm__("a2") = arg2;
    register long a6 __asm__("a6") = fid;
    register long a7 __asm__("a7") = eid;
    __asm__ volatile("ecall" : "+r"(a0), "+r"(a1) : "r"(a2), "r"(a6), "r"(a7) : "memory");
    return (struct sbiret){ a0, a1 };
}

void sbi_putchar(int c) { sbi_call(SBI_LEGACY_PUTCHAR, 0, c, 0, 0); }

void sbi_set_timer(uint64_t when) { sbi_call(SBI_TIME, 0, (long)when, 0, 0); }

void sbi_send_ipi(unsigned long hart_mask) { sbi_call(SBI_IPI, 0, (long)hart_mask, 0, 0); }

long sbi_hart_start(unsigned long hartid, unsigned long start, unsigned long opaque)
{
    return sbi_call(SBI_HSM, 0, (long)hartid, (long)start, (long)opaque).error;
}

/* BASE probe_extension: nonzero when the extension is present */
long sbi_probe(long eid) { return sbi_call(SBI_BASE, 3, eid, 0, 0).value; }

/* SRST system_reset(type 0 = shutdown, reason 0 = none / 1 = system failure) */
void sbi_shutdown(int failure)
{
    sbi_call(SBI_SRST, 0, 0, failure ? 1 : 0, 0);
    for (;;)
        wfi();
}

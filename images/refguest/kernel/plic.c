/* PLIC (QEMU virt layout): the S-mode context of hart h is context 2h+1. */
#include "kernel.h"

#define PLIC_PRIORITY(irq)    (plic + 4 * (irq))
#define PLIC_ENABLE(ctx)      (plic + 0x2000 + 0x80 * (ctx))
#define PLIC_THRESHOLD(ctx)   (plic + 0x200000 + 0x1000 * (ctx))
#define PLIC_CLAIM(ctx)       (plic + 0x200000 + 0x1000 * (ctx) + 4)
#define S_CTX(hart)           (2 * (hart) + 1)

static uint64_t plic;

static volatile uint32_t *reg(uint64_t addr) { return (volatile uint32_t *)addr; }

void plic_init(uint64_t base, uint32_t irq, int hart)
{
    plic = base;
    *reg(PLIC_PRIORITY(irq)) = 1;
    *reg(PLIC_ENABLE(S_CTX(hart)) + 4 * (irq / 32)) |= 1U << (irq % 32);
    *reg(PLIC_THRESHOLD(S_CTX(hart))) = 0;
}

uint32_t plic_claim(int hart) { return *reg(PLIC_CLAIM(S_CTX(hart))); }

void plic_complete(int hart, uint32_t irq) { *reg(PLIC_CLAIM(S_CTX(hart))) = irq; }

/* CSR access, SBI-independent RISC-V helpers, spinlocks. */
#ifndef REF_RISCV_H
#define REF_RISCV_H
#include <stdint.h>

#define csr_read(csr) ({ unsigned long __v; \
    __asm__ volatile("csrr %0, " #csr : "=r"(__v) :: "memory"); __v; })
#define csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" :: "r"((unsigned long)(v)) : "memory")
#define csr_set(csr, v)   __asm__ volatile("csrs " #csr ", %0" :: "r"((unsigned long)(v)) : "memory")
#define csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" :: "r"((unsigned long)(v)) : "memory")

#define SSTATUS_SIE   (1UL << 1)
#define SSTATUS_SPIE  (1UL << 5)
#define SSTATUS_SPP   (1UL << 8)

#define SIP_SSIP  (1UL << 1)   /* supervisor software interrupt (IPI) */
#define SIP_STIP  (1UL << 5)   /* supervisor timer interrupt */
#define SIP_SEIP  (1UL << 9)   /* supervisor external interrupt (PLIC) */

#define SCAUSE_INTR      (1UL << 63)
#define IRQ_S_SOFT       1
#define IRQ_S_TIMER      5
#define IRQ_S_EXT        9
#define EXC_ILLEGAL      2
#define EXC_ECALL_U      8

static inline uint64_t rdtime(void)
{
    uint64_t t;
    __asm__ volatile("rdtime %0" : "=r"(t));
    return t;
}

static inline void wfi(void) { __asm__ volatile("wfi" ::: "memory"); }
static inline void sfence_vma(void) { __asm__ volatile("sfence.vma" ::: "memory"); }
static inline void fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }

typedef struct { volatile int locked; } spinlock_t;

static inline void lock(spinlock_t *l)
{
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
            ;
}

static inline void unlock(spinlock_t *l)
{
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

#endif

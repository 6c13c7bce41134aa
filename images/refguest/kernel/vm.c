/* Sv39 paging. The kernel identity-maps devices (0..1 GiB) and RAM with global
 * gigapages; every user task gets its own root table that shares those entries and
 * maps its program and stack in the 1..2 GiB slot (root index 1). */
#include "kernel.h"

#define PTE_V (1UL << 0)
#define PTE_R (1UL << 1)
#define PTE_W (1UL << 2)
#define PTE_X (1UL << 3)
#define PTE_U (1UL << 4)
#define PTE_G (1UL << 5)
#define PTE_A (1UL << 6)
#define PTE_D (1UL << 7)
#define SATP_SV39 (8UL << 60)
#define USER_SLOT 1              /* root index of VA 0x4000_0000..0x7fff_ffff */

static uint64_t kroot[512] __attribute__((aligned(4096)));
static uint64_t kernel_satp;

static uint64_t pte_pa(uint64_t pte) { return (pte >> 10) << 12; }
static uint64_t pa_pte(uint64_t pa) { return (pa >> 12) << 10; }

void vm_init(uint64_t mem_base, uint64_t mem_size)
{
    /* A and D preset: no access/dirty faults on any implementation */
    kroot[0] = pa_pte(0) | PTE_R | PTE_W | PTE_A | PTE_D | PTE_G | PTE_V;   /* UART, PLIC, ... */
    for (uint64_t gb = mem_base >> 30; gb <= (mem_base + mem_size - 1) >> 30 && gb < 512; gb++)
        if (gb != USER_SLOT)
            kroot[gb] = pa_pte(gb << 30) | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_G | PTE_V;
    kernel_satp = SATP_SV39 | ((uint64_t)kroot >> 12);
}

void vm_use(uint64_t satp)
{
    struct cpu *c = this_cpu();
    if (c->satp == satp)
        return;
    csr_write(satp, satp);
    sfence_vma();
    c->satp = satp;
}

void vm_use_kernel(void) { vm_use(kernel_satp); }

uint64_t *uvm_create(void)
{
    uint64_t *root = page_alloc();
    if (root)
        for (int i = 0; i < 512; i++)
            if (i != USER_SLOT)
                root[i] = kroot[i];
    return root;
}

uint64_t uvm_satp(uint64_t *root) { return SATP_SV39 | ((uint64_t)root >> 12); }

static uint64_t *walk(uint64_t *root, uint64_t va, int create)
{
    uint64_t *table = root;
    for (int level = 2; level > 0; level--) {
        uint64_t *pte = &table[(va >> (12 + 9 * level)) & 511];
        if (!(*pte & PTE_V)) {
            if (!create)
                return 0;
            void *next = page_alloc();
            if (!next)
                return 0;
            *pte = pa_pte((uint64_t)next) | PTE_V;
        }
        table = (uint64_t *)pte_pa(*pte);
    }
    return &table[(va >> 12) & 511];
}

int uvm_map(uint64_t *root, uint64_t va, void *page, int writable)
{
    uint64_t *pte = walk(root, va, 1);
    if (!pte)
        return -1;
    *pte = pa_pte((uint64_t)page) | PTE_R | PTE_X | PTE_U | PTE_A | PTE_D | PTE_V |
           (writable ? PTE_W : 0);
    return 0;
}

/* free the user slot: leaf pages, the tables, then the root */
void uvm_free(uint64_t *root)
{
    uint64_t l1e = root[USER_SLOT];
    if (l1e & PTE_V) {
        uint64_t *l1 = (uint64_t *)pte_pa(l1e);
        for (int i = 0; i < 512; i++) {
            if (!(l1[i] & PTE_V))
                continue;
            uint64_t *l0 = (uint64_t *)pte_pa(l1[i]);
            for (int j = 0; j < 512; j++)
                if (l0[j] & PTE_V)
                    page_free((void *)pte_pa(l0[j]));
            page_free(l0);
        }
        page_free(l1);
    }
    page_free(root);
}

/* user VA -> kernel pointer (RAM is identity-mapped), checking U (and W) */
static uint8_t *user_ptr(uint64_t *root, uint64_t uva, int write)
{
    if (uva < USER_BASE || uva >= USER_STACK_TOP)
        return 0;
    uint64_t *pte = walk(root, uva, 0);
    if (!pte || !(*pte & PTE_V) || !(*pte & PTE_U) || (write && !(*pte & PTE_W)))
        return 0;
    return (uint8_t *)(pte_pa(*pte) + (uva & (PAGE_SIZE - 1)));
}

int copy_in(uint64_t *root, void *dst, uint64_t uva, size_t n)
{
    uint8_t *d = dst;
    while (n) {
        uint8_t *s = user_ptr(root, uva, 0);
        size_t chunk = PAGE_SIZE - (uva & (PAGE_SIZE - 1));
        if (!s)
            return -1;
        if (chunk > n)
            chunk = n;
        memcpy(d, s, chunk);
        d += chunk, uva += chunk, n -= chunk;
    }
    return 0;
}

int copy_out(uint64_t *root, uint64_t uva, const void *src, size_t n)
{
    const uint8_t *s = src;
    while (n) {
        uint8_t *d = user_ptr(root, uva, 1);
        size_t chunk = PAGE_SIZE - (uva & (PAGE_SIZE - 1));
        if (!d)
            return -1;
        if (chunk > n)
            chunk = n;
        memcpy(d, s, chunk);
        s += chunk, uva += chunk, n -= chunk;
    }
    return 0;
}

int copy_in_str(uint64_t *root, char *dst, uint64_t uva, size_t max)
{
    for (size_t i = 0; i < max; i++) {
        uint8_t *s = user_ptr(root, uva + i, 0);
        if (!s)
            return -1;
        dst[i] = (char)*s;
        if (!*s)
            return (int)i;
    }
    dst[max - 1] = 0;
    return (int)max - 1;
}

/* Physical page allocator: a locked free list of 4 KiB pages after the kernel image. */
#include "kernel.h"

struct page { struct page *next; };
static struct page *free_list;
static uint64_t nfree;
static spinlock_t mem_lock;

void mem_init(uint64_t start, uint64_t end)
{
    start = (start + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    /* push in reverse so allocation goes upwards from the kernel: deterministic layout */
    for (uint64_t p = (end & ~(PAGE_SIZE - 1)) - PAGE_SIZE; p >= start; p -= PAGE_SIZE)
        page_free((void *)p);
}

void *page_alloc(void)
{
    lock(&mem_lock);
    struct page *p = free_list;
    if (p) {
        free_list = p->next;
        nfree--;
    }
    unlock(&mem_lock);
    if (p)
        memset(p, 0, PAGE_SIZE);
    return p;
}

void page_free(void *ptr)
{
    struct page *p = ptr;
    lock(&mem_lock);
    p->next = free_list;
    free_list = p;
    nfree++;
    unlock(&mem_lock);
}

uint64_t pages_free(void) { return nfree; }

/* Block-budget slicing for Unicorn: the one piece of the hot path written in C.
 *
 * A UC_HOOK_BLOCK callback that subtracts each translated block's size (bytes)
 * from a budget and calls uc_emu_stop() synchronously once it is spent.  This
 * ends a hart's time slice deterministically without per-instruction counting
 * (emu_start(count=...) is 2-7x slower) and without asynchronous stops (which
 * corrupt the guest).  See shared/notes/unicorn-riscv64.md, "How to end a slice".
 *
 * uc_emu_stop is passed in as a function pointer so this file needs neither the
 * Unicorn headers nor linking against libunicorn.
 */
#include <stdint.h>

typedef int (*emu_stop_fn)(void *uc);

struct emu_budget {
    int64_t budget;      /* bytes left in this slice; <= 0 ends the slice */
    uint64_t blocks;     /* blocks entered in this slice */
    uint64_t bytes;      /* bytes of blocks entered in this slice */
    uint64_t stopped;    /* 1 once this callback asked Unicorn to stop */
    emu_stop_fn stop;    /* uc_emu_stop */
};

void emu_block_budget(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    struct emu_budget *b = (struct emu_budget *)user_data;
    (void)address;
    b->blocks += 1;
    b->bytes += size;
    b->budget -= (int64_t)size;
    if (b->budget <= 0 && !b->stopped) {
        b->stopped = 1;
        b->stop(uc);
    }
}

/* An MMIO region with nothing behind it that reads all ones (PCI ECAM with no devices:
 * vendor 0xFFFF).  zCore probes all 65,536 functions at boot; in C each read costs
 * nanoseconds instead of a Python callback. */
uint64_t emu_mmio_read_ones(void *uc, uint64_t offset, unsigned size, void *user_data)
{
    (void)uc; (void)offset; (void)user_data;
    return size >= 8 ? ~(uint64_t)0 : (((uint64_t)1 << (8 * size)) - 1);
}

void emu_mmio_write_ignore(void *uc, uint64_t offset, unsigned size, uint64_t value, void *user_data)
{
    (void)uc; (void)offset; (void)size; (void)value; (void)user_data;
}

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
#include <stddef.h>
#include <stdint.h>

typedef int (*emu_stop_fn)(void *uc);
typedef int (*emu_reg_read_batch_fn)(void *uc, int *regs, void **vals, int count);

#define SPIN_REGS 31      /* x1..x31 */
#define SPIN_POWER_MAX 4096
#define SPIN_BACKOFF_MAX 4096
#define SPIN_RING 32

struct emu_budget {
    int64_t budget;      /* bytes left in this slice; <= 0 ends the slice */
    uint64_t blocks;     /* blocks entered in this slice */
    uint64_t bytes;      /* bytes of blocks entered in this slice */
    uint64_t stopped;    /* 1 once this callback asked Unicorn to stop */
    emu_stop_fn stop;    /* uc_emu_stop */
    /* Spin detection (spin_limit 0 = off).  A hart that polls memory goes round a loop
     * (possibly with inner loops, e.g. scanning a run queue) that comes back to the same
     * block with exactly the same registers: nothing it does changes anything until
     * another hart (or a device) writes what it reads.  Loops are found with Brent's
     * cycle search over block addresses (an anchor block moved at power-of-two steps);
     * at each return to the anchor, a hash of x1..x31 is looked up among the last
     * SPIN_RING returns, together with the count of traps taken (a loop of system calls
 * keeps its state in memory, not registers); spin_limit repeats end the slice with
 * spinning = 1.  Loops whose
     * registers never repeat (real work) back off exponentially, so computing costs next
     * to nothing.  Deterministic: it looks only at guest state. */
    uint64_t spin_limit;
    uint64_t spinning;
    uint64_t fresh;      /* set by the host at each slice start: restart the search */
    uint64_t anchor, steps, power, matches, skip, backoff, ring_n, ring_pos;
    emu_reg_read_batch_fn reg_read_batch;
    const uint64_t *trap_counts; /* the engine's native trap counts (64 causes) */
    uint64_t events;             /* traps, SBI calls and MMIO the host handled */
    int32_t reg_ids[SPIN_REGS];
    uint64_t cur[SPIN_REGS];
    void *ptrs[SPIN_REGS];
    uint64_t ring[SPIN_RING];
};

static void spin_reset(struct emu_budget *b)
{
    b->anchor = ~(uint64_t)0;
    b->steps = 0;
    b->power = 2;
    b->matches = 0;
    b->ring_n = 0;
    b->skip = 0;
    b->backoff = 0;
    b->fresh = 0;
    for (int i = 0; i < SPIN_REGS; i++)
        b->ptrs[i] = &b->cur[i];
}

static uint64_t regs_hash(const uint64_t *r)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < SPIN_REGS; i++) {
        h ^= r[i] + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h *= 0xff51afd7ed558ccdULL;
    }
    return h ^ (h >> 33);
}

/* Returns 1 when the hart is seen polling. */
static int spin_check(struct emu_budget *b, void *uc, uint64_t address)
{
    if (b->fresh)
        spin_reset(b);
    if (address == b->anchor) {
        if (b->skip) {
            b->skip--;
        } else if (b->reg_read_batch(uc, b->reg_ids, b->ptrs, SPIN_REGS) == 0) {
            uint64_t h = regs_hash(b->cur), traps = b->events;
            for (int i = 0; i < 64; i++)
                traps += b->trap_counts[i];
            /* a loop that takes traps (system calls) is working, whatever its registers */
            h ^= traps * 0xc4ceb9fe1a85ec53ULL;
            int seen = 0;
            for (uint64_t i = 0; i < b->ring_n && !seen; i++)
                seen = b->ring[i] == h;
            if (seen) {
                if (++b->matches >= b->spin_limit)
                    return 1;
            } else if (b->ring_n == SPIN_RING) {  /* no state repeats: real work */
                b->backoff = b->backoff ? (b->backoff * 2 > SPIN_BACKOFF_MAX ? SPIN_BACKOFF_MAX : b->backoff * 2) : 1;
                b->skip = b->backoff;
                b->ring_n = 0;
                b->matches = 0;
            }
            b->ring[b->ring_pos++ % SPIN_RING] = h;
            if (b->ring_n < SPIN_RING)
                b->ring_n++;
        }
    }
    if (++b->steps >= b->power) {
        b->anchor = address;
        b->steps = 0;
        if (b->power < SPIN_POWER_MAX)
            b->power *= 2;
        b->matches = 0;
        b->ring_n = 0;
    }
    return 0;
}

void emu_block_budget(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    struct emu_budget *b = (struct emu_budget *)user_data;
    b->blocks += 1;
    b->bytes += size;
    b->budget -= (int64_t)size;
    if (b->stopped)
        return;
    if (b->budget <= 0) {
        b->stopped = 1;
        b->stop(uc);
        return;
    }
    if (b->spin_limit && spin_check(b, uc, address)) {
        b->spinning = 1;
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

/* The time CSR, answered natively (the patched engine calls this for every `rdtime`;
 * see patches/unicorn/README.md): the running hart's local virtual time, in ticks.
 *
 * local time = hart_base (round start + what the hart ran in earlier slices of the round)
 *            + what it ran in this slice (slice_budget - budget->budget).
 * Reads are clamped to be monotonic across harts.  A hart polling the time in a tight loop
 * (the same pc read again within spin_gap bytes) skips time forward, exponentially up to
 * skip_max ticks per read, charged to its budget: U-Boot's `sleep 1` and Linux's udelay
 * cost milliseconds of host time instead of millions of reads.  Deterministic: it depends
 * only on the code executed. */
struct emu_spin {
    uint64_t last_pc;
    int64_t last_bytes;
    int64_t count;
    uint64_t reads;      /* time reads by this hart */
};

struct emu_clock {
    int64_t hart_base;
    int64_t slice_budget;
    int64_t last_read;       /* ticks */
    int64_t bytes_per_tick;
    int64_t skipped_bytes;
    int64_t spin_threshold;
    int64_t spin_gap;
    int64_t skip_max;
    struct emu_budget *budget;
    struct emu_spin *spin;   /* the running hart's */
};

uint64_t emu_rdtime(void *opaque, uint64_t pc)
{
    struct emu_clock *c = (struct emu_clock *)opaque;
    struct emu_spin *s = c->spin;
    int64_t local = c->hart_base + (c->slice_budget - c->budget->budget);
    int64_t ticks;

    s->reads += 1;
    if (pc == s->last_pc && local - s->last_bytes < c->spin_gap) {
        s->count += 1;
        if (s->count > c->spin_threshold) {
            int64_t shift = s->count - c->spin_threshold;
            int64_t skip = (int64_t)1 << (shift < 20 ? shift : 20);
            if (skip > c->skip_max)
                skip = c->skip_max;
            c->budget->budget -= skip * c->bytes_per_tick;
            c->skipped_bytes += skip * c->bytes_per_tick;
            local += skip * c->bytes_per_tick;
        }
    } else {
        s->count = 0;
    }
    s->last_pc = pc;
    s->last_bytes = local;
    ticks = local / c->bytes_per_tick;
    if (ticks > c->last_read)
        c->last_read = ticks;
    return (uint64_t)c->last_read;
}

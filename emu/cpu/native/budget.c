/* Slice budgets and spin detection for the patched Unicorn: the hot path's one C file.
 *
 * The engine keeps the budget inline (patches/unicorn, uc_emu_budget): every translated
 * block subtracts its size in bytes from `budget` on entry, in generated code, and calls
 * emu_budget_hit() only when `budget` reaches `mark` or the block starts at `anchor`.
 * So there is no callback per block: the slice ends (uc_emu_stop, taking effect before
 * the block runs) when the budget is spent, and spin detection runs only at its own
 * steps and at returns to its anchor.
 *
 * Spin detection (spin_limit 0 = off).  A hart that polls memory goes round a loop
 * (possibly with inner loops, e.g. scanning a run queue) that comes back to the same block
 * with exactly the same registers: nothing it does changes anything until another hart
 * (or a device) writes what it reads.  Loops are found with Brent's cycle search, its
 * steps counted in code bytes: the anchor moves to the block being entered every `power`
 * bytes (doubling from POWER_MIN to POWER_MAX), and a loop of up to `power` bytes comes
 * back to it.  At each return, a hash of x1..x31 and of the count of traps taken (a loop
 * of system calls keeps its state in memory, not registers) is looked up among the last
 * SPIN_RING returns; spin_limit repeats end the slice with spinning = 1.  A register that
 * only counts (+-1 each time round) in a loop that did atomic operations is left out of the
 * hash: a poll that takes a ticket lock every time round is still a poll.  A loop whose
 * registers never repeat is real work: the anchor is dropped for `backoff` bytes (doubling
 * up to BACKOFF_MAX), so a hart that computes costs next to nothing.  Deterministic: it
 * looks only at guest state and code bytes.
 *
 * uc_emu_stop is passed in as a function pointer so this file needs neither the Unicorn
 * headers nor linking against libunicorn.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef int (*emu_stop_fn)(void *uc);

#define SPIN_REGS 31       /* x1..x31 */
#define SPIN_RING 32
#define POWER_MIN 32       /* bytes: about two blocks */
#define POWER_MAX 65536
#define BACKOFF_MIN 4096
#define BACKOFF_MAX (1 << 20)
#define NO_ANCHOR (~(uint64_t)0)

struct emu_budget {
    /* read by the engine's generated code: keep these three first, in this order */
    int64_t budget;      /* bytes left in this slice; each block subtracts its size */
    int64_t mark;        /* emu_budget_hit() when budget <= mark */
    uint64_t anchor;     /* ... or when a block starting here is entered */
    uint64_t atomics;    /* the engine adds one per atomic instruction (lr, sc, amo*) */
    uint64_t stopped;    /* 1 once this callback asked Unicorn to stop */
    emu_stop_fn stop;    /* uc_emu_stop */
    const uint64_t *gpr; /* the engine's x0..x31, read in place (uc_emu_gpr) */
    const uint64_t *trap_counts; /* the engine's native trap counts (64 causes, then their total) */
    uint64_t events;     /* traps, SBI calls and MMIO the host handled */
    uint64_t spin_limit;
    uint64_t spinning;
    int64_t step_at;     /* budget at which the anchor moves next */
    int64_t resume_at;   /* budget at which a dropped search resumes (0: not dropped) */
    uint64_t power, backoff, matches, ring_n, ring_pos;
    uint64_t ring[SPIN_RING];
    uint64_t last_atomics;         /* atomics at the previous return to the anchor */
    uint64_t last_gpr[SPIN_REGS];  /* x1..x31 at the previous return to the anchor */
    uint64_t counters_ok;          /* another hart can run: a poll may count (set per slice) */
};

/* Registers that only count: changed by exactly +-1 since the previous return to the
 * anchor, in a loop that did atomic operations since (a ticket lock taken and dropped each
 * time round: zCore's offload server polls its queue so).  A loop that does no atomic
 * operation (a copy, a checksum) gets no such tolerance: all of its registers count.
 * Nor does a hart that runs alone (counters_ok = 0): a loop of calls that each take a
 * lock, counting to a bound, looks the same, and with no other hart to wait for, a poll
 * there can only wait for an interrupt, which cuts the slice anyway. */
static uint32_t counter_mask(const struct emu_budget *b)
{
    uint32_t mask = 0;
    if (!b->counters_ok || b->atomics == b->last_atomics)
        return 0;
    for (int i = 0; i < SPIN_REGS; i++) {
        uint64_t d = b->gpr[i + 1] - b->last_gpr[i];
        if (d == 1 || d == ~(uint64_t)0)
            mask |= (uint32_t)1 << i;
    }
    return mask;
}

static uint64_t traps_taken(const struct emu_budget *b)
{
    return b->events + b->trap_counts[64];
}

static void remember(struct emu_budget *b)
{
    memcpy(b->last_gpr, b->gpr + 1, sizeof(b->last_gpr));
    b->last_atomics = b->atomics;
}

/* Odd multipliers, one per register: the products are independent, so the hash of 31
 * registers costs about as many cycles as multiplies (a chained hash took ~200 cycles per
 * return to the anchor, and a loop with a short body returns often). */
static const uint64_t MULT[SPIN_REGS] = {
    0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9, 0x94d049bb133111eb, 0xd6e8feb86659fd93,
    0xc2b2ae3d27d4eb4f, 0x165667b19e3779f9, 0x27d4eb2f165667c5, 0xff51afd7ed558ccd,
    0xc4ceb9fe1a85ec53, 0x87c37b91114253d5, 0x4cf5ad432745937f, 0x52dce729da3ed6b5,
    0x85ebca6b0cf1d2b9, 0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3,
    0x589965cc75374cc3, 0x1d8e4e27c47d124f, 0xd1b54a32d192ed03, 0xaef17502108ef2d9,
    0xdb4f0b9175ae2165, 0x9fb21c651e98df25, 0x2127599bf4325c37, 0x880355f21e6d1965,
    0xa24baed4963ee407, 0x9ae16a3b2f90404f, 0xc13fa9a902a6328f, 0xf1357aea2e62a9c5,
    0xb492b66fbe98f273, 0x9c6b5d4a8b8e2a31, 0xe9c0e8b0d4a1f3c7,
};

static uint64_t state_hash(struct emu_budget *b, uint32_t counters, uint64_t traps)
{
    uint64_t h = 0;
    for (int i = 0; i < SPIN_REGS; i++) {
        uint64_t v = (counters >> i) & 1 ? 0 : b->gpr[i + 1];
        h += (v ^ (v >> 29)) * MULT[i];
    }
    /* a loop that takes traps (system calls) is working, whatever its registers: the
     * count of traps taken so far is part of the state, so no return matches one from
     * before a trap */
    h ^= traps * 0xc4ceb9fe1a85ec53ULL;
    h ^= (uint64_t)counters * 0x94d049bb133111ebULL;  /* the same registers count each time */
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    return h ^ (h >> 32);
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The next budget value at which the host must look: the slice's end, the search's next
 * step, or where a dropped search resumes. */
static void set_mark(struct emu_budget *b)
{
    int64_t m = 0;
    if (b->spin_limit)
        m = max64(m, b->resume_at ? b->resume_at : b->step_at);
    b->mark = m;
}

/* A new slice of `budget` bytes: the search starts afresh (another hart may have changed
 * what this one reads). */
void emu_budget_begin(struct emu_budget *b, int64_t budget)
{
    b->budget = budget;
    b->stopped = 0;
    b->spinning = 0;
    b->anchor = NO_ANCHOR;
    b->power = POWER_MIN;
    b->step_at = budget - POWER_MIN;
    b->resume_at = 0;
    b->backoff = 0;
    b->matches = 0;
    b->ring_n = 0;
    set_mark(b);
}

static void stop(struct emu_budget *b, void *uc)
{
    b->stopped = 1;
    b->mark = INT64_MAX;   /* no more calls until the next slice */
    b->anchor = NO_ANCHOR;
    b->stop(uc);
}

/* Returns 1 when the hart is seen polling: called on a return to the anchor. */
static int anchor_return(struct emu_budget *b)
{
    uint64_t h = state_hash(b, counter_mask(b), traps_taken(b));
    remember(b);
    int seen = 0;
    for (uint64_t i = 0; i < b->ring_n && !seen; i++)
        seen = b->ring[i] == h;
    if (seen) {
        if (++b->matches >= b->spin_limit)
            return 1;
    } else if (b->ring_n == SPIN_RING) {  /* no state repeats: real work, look later */
        b->backoff = b->backoff ? (b->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : b->backoff * 2) : BACKOFF_MIN;
        b->anchor = NO_ANCHOR;
        b->resume_at = max64(1, b->budget - (int64_t)b->backoff);
        b->ring_n = 0;
        b->matches = 0;
        return 0;
    }
    b->ring[b->ring_pos++ % SPIN_RING] = h;
    if (b->ring_n < SPIN_RING)
        b->ring_n++;
    return 0;
}

/* Called by the engine at the start of a block at `address` (already charged) when the
 * budget reached the mark or the block is the anchor. */
void emu_budget_hit(void *uc, uint64_t address, void *user_data)
{
    struct emu_budget *b = (struct emu_budget *)user_data;
    if (b->stopped)
        return;
    if (b->budget <= 0) {
        stop(b, uc);
        return;
    }
    if (!b->spin_limit)
        return;
    if (address == b->anchor && anchor_return(b)) {
        b->spinning = 1;
        stop(b, uc);
        return;
    }
    if (b->resume_at && b->budget <= b->resume_at) {
        b->resume_at = 0;
        b->step_at = b->budget;  /* the search resumes here */
    }
    if (!b->resume_at && b->budget <= b->step_at) {  /* Brent's step: move the anchor */
        b->anchor = address;
        b->step_at = b->budget - (int64_t)b->power;
        if (b->power < POWER_MAX)
            b->power *= 2;
        b->matches = 0;
        b->ring_n = 0;
        remember(b);
    }
    set_mark(b);
}

/* Switching harts and running a slice in one call each (a ctypes call costs about half a
 * microsecond; a switch was ten of them).  The engine's entry points come in as function
 * pointers, as uc_emu_stop does. */
typedef int (*uc_ctx_fn)(void *uc, void *ctx);
typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
typedef int (*uc_start_fn)(void *uc, uint64_t begin, uint64_t until, uint64_t timeout, size_t count);

struct emu_hart_io {
    void *uc;
    struct emu_budget *budget;
    uc_ctx_fn context_restore;
    uc_reg_fn reg_read;
    uc_reg_fn reg_write;
    uc_ctx_fn tlb_switch;        /* uc_emu_tlb_switch(uc, set) */
    uc_start_fn emu_start;
    int32_t reg_priv, reg_mip, reg_pc, pad;
    uint64_t priv_m;             /* the privilege at which mip is writable */
    uint64_t mip_keep;           /* mip bits the context keeps (the rest come from the host) */
    uint64_t until;              /* an address no guest executes */
    uint64_t pc, priv;           /* after a slice: where the hart stopped */
};

/* Load a hart: its context, the host-raised mip bits (QEMU's interrupt_request is outside
 * the context: writing mip makes pending bits taken), and its own TLB set. */
int emu_switch_in(struct emu_hart_io *io, void *ctx, void *tlb_set, uint64_t mip_bits)
{
    uint64_t priv, mip;
    int err = io->context_restore(io->uc, ctx);
    if (err)
        return err;
    io->reg_read(io->uc, io->reg_priv, &priv);
    io->reg_write(io->uc, io->reg_priv, &io->priv_m);
    io->reg_read(io->uc, io->reg_mip, &mip);
    mip = (mip & io->mip_keep) | mip_bits;
    io->reg_write(io->uc, io->reg_mip, &mip);
    io->reg_write(io->uc, io->reg_priv, &priv);
    return io->tlb_switch(io->uc, tlb_set);
}

/* Run the loaded hart from its pc, with a new slice of `budget` bytes if budget >= 0 (else
 * the slice goes on); on return io->pc and io->priv say where it stopped. */
int emu_run_slice(struct emu_hart_io *io, int64_t budget)
{
    uint64_t pc;
    int err;
    if (budget >= 0)
        emu_budget_begin(io->budget, budget);
    io->reg_read(io->uc, io->reg_pc, &pc);
    err = io->emu_start(io->uc, pc, io->until, 0, 0);
    io->reg_read(io->uc, io->reg_pc, &io->pc);
    io->reg_read(io->uc, io->reg_priv, &io->priv);
    return err;
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
    int64_t skipped_bytes; /* what its time-polling skips charged to it */
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
            s->skipped_bytes += skip * c->bytes_per_tick;
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

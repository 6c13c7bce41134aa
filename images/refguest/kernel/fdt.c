/* Flattened device tree parser: just what the guest needs from the DTB
 * (/chosen/bootargs, /memory, /cpus, the ns16550a UART and the PLIC). */
#include "kernel.h"

#define FDT_MAGIC      0xd00dfeed
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE   2
#define FDT_PROP       3
#define FDT_NOP        4
#define FDT_END        9
#define MAX_DEPTH      8

/* byte loads only: no misaligned accesses whatever the DTB alignment */
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t cells(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 32 | be32(p + 4 * i);
    return v;
}

struct node {
    const char *name;
    const uint8_t *reg, *tbf, *irqs;
    uint32_t reg_len, irqs_len;
    const char *compat, *devtype, *status, *bootargs;
    uint32_t compat_len, bootargs_len;
    int addr_cells, size_cells;      /* for this node's children */
};

static int compat_has(const struct node *n, const char *want)
{
    const char *s = n->compat, *end = n->compat + n->compat_len;
    while (s && s < end) {
        if (!strcmp(s, want))
            return 1;
        s += strlen(s) + 1;
    }
    return 0;
}

static void node_done(const struct node *n, const struct node *parent, int depth,
                      struct bootinfo *bi)
{
    int ac = parent ? parent->addr_cells : 2, sc = parent ? parent->size_cells : 1;
    uint64_t addr = 0, size = 0;
    if (n->reg && n->reg_len >= 4u * (ac + sc)) {
        addr = cells(n->reg, ac);
        size = cells(n->reg + 4 * ac, sc);
    }
    if (depth == 1 && !strcmp(n->name, "chosen") && n->bootargs) {
        uint32_t len = n->bootargs_len < sizeof bi->bootargs ? n->bootargs_len
                                                             : sizeof bi->bootargs - 1;
        memcpy(bi->bootargs, n->bootargs, len);
        bi->bootargs[len] = 0;
    }
    if (depth == 1 && !strcmp(n->name, "cpus") && n->tbf)
        bi->timebase = be32(n->tbf);
    if (n->devtype && !strcmp(n->devtype, "cpu") &&
        (!n->status || !strcmp(n->status, "okay"))) {
        bi->nharts++;
        if (addr < 64)
            bi->hart_mask |= 1UL << addr;
        if (n->tbf && !bi->timebase)
            bi->timebase = be32(n->tbf);
    }
    if (n->devtype && !strcmp(n->devtype, "memory") && !bi->mem_size && n->reg) {
        bi->mem_base = addr;
        bi->mem_size = size;
    }
    if (compat_has(n, "ns16550a") && !bi->uart_base) {
        bi->uart_base = addr;
        if (n->irqs && n->irqs_len >= 4)
            bi->uart_irq = be32(n->irqs);
    }
    if ((compat_has(n, "riscv,plic0") || compat_has(n, "sifive,plic-1.0.0")) && !bi->plic_base)
        bi->plic_base = addr;
}

int fdt_parse(const void *dtb, struct bootinfo *bi)
{
    const uint8_t *h = dtb;
    if (be32(h) != FDT_MAGIC)
        return -1;
    const uint8_t *p = h + be32(h + 8);
    const char *strings = (const char *)h + be32(h + 12);
    struct node stack[MAX_DEPTH];
    int depth = -1;

    bi->uart_irq = 10;
    for (;;) {
        uint32_t tok = be32(p);
        p += 4;
        if (tok == FDT_BEGIN_NODE) {
            const char *name = (const char *)p;
            p += (strlen(name) + 4) & ~3UL;
            if (++depth >= MAX_DEPTH)
                return -1;
            memset(&stack[depth], 0, sizeof stack[depth]);
            stack[depth].name = name;
            stack[depth].addr_cells = 2;
            stack[depth].size_cells = 1;
        } else if (tok == FDT_PROP) {
            uint32_t len = be32(p), nameoff = be32(p + 4);
            const uint8_t *val = p + 8;
            const char *pn = strings + nameoff;
            struct node *n = &stack[depth];
            p += 8 + ((len + 3) & ~3U);
            if (depth < 0)
                return -1;
            if (!strcmp(pn, "reg")) {
                n->reg = val;
                n->reg_len = len;
            } else if (!strcmp(pn, "compatible")) {
                n->compat = (const char *)val;
                n->compat_len = len;
            } else if (!strcmp(pn, "device_type")) {
                n->devtype = (const char *)val;
            } else if (!strcmp(pn, "status")) {
                n->status = (const char *)val;
            } else if (!strcmp(pn, "timebase-frequency")) {
                n->tbf = val;
            } else if (!strcmp(pn, "interrupts")) {
                n->irqs = val;
                n->irqs_len = len;
            } else if (!strcmp(pn, "bootargs")) {
                n->bootargs = (const char *)val;
                n->bootargs_len = len ? len - 1 : 0;
            } else if (!strcmp(pn, "#address-cells")) {
                n->addr_cells = (int)be32(val);
            } else if (!strcmp(pn, "#size-cells")) {
                n->size_cells = (int)be32(val);
            }
        } else if (tok == FDT_END_NODE) {
            if (depth < 0)
                return -1;
            node_done(&stack[depth], depth ? &stack[depth - 1] : 0, depth, bi);
            depth--;
        } else if (tok == FDT_NOP) {
            continue;
        } else {
            break;                  /* FDT_END or garbage */
        }
    }
    return bi->mem_size ? 0 : -1;
}

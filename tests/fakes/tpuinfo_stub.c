/* A stand-in libtpuinfo with the ABI of ttop/collect/tpu.py, built by the
 * tests with `gcc -shared -fPIC`. Its values come from the text file named by
 * $TTOP_TPU_STUB_STATE, read on every call so a test can change them between
 * collector cycles:
 *
 *     <chip_count> <metrics_rc> <pids_rc>
 *     <device_id> <memory_usage> <total_memory> <duty_cycle_pct> <pid>   (one line per chip)
 *
 * A negative chip_count is returned as an error by tpu_chip_count; a non-zero
 * metrics_rc / pids_rc replaces the return value of tpu_metrics / tpu_pids
 * (negative: an error). No state file: no chips. */
#include <stdio.h>
#include <stdlib.h>

#define MAX_CHIPS 64

struct chip { long long id, used, total, pid; double duty; };

static int load(struct chip *chips, int *metrics_rc, int *pids_rc)
{
    const char *path = getenv("TTOP_TPU_STUB_STATE");
    FILE *f;
    int count = 0, i;
    *metrics_rc = 0;
    *pids_rc = 0;
    if (!path || !(f = fopen(path, "r")))
        return 0;
    if (fscanf(f, "%d %d %d", &count, metrics_rc, pids_rc) != 3)
        count = 0;
    for (i = 0; i < count && i < MAX_CHIPS; i++) {
        if (fscanf(f, "%lld %lld %lld %lf %lld", &chips[i].id, &chips[i].used,
                   &chips[i].total, &chips[i].duty, &chips[i].pid) != 5)
            break;
    }
    fclose(f);
    if (count > 0 && i < count)
        count = i;
    return count;
}

int tpu_chip_count(void)
{
    struct chip chips[MAX_CHIPS];
    int m, p;
    return load(chips, &m, &p);
}

int tpu_pids(long long *pids, int n)
{
    struct chip chips[MAX_CHIPS];
    int m, p, i, count = load(chips, &m, &p);
    if (p)
        return p;
    if (count < 0)
        return count;
    for (i = 0; i < count && i < n; i++)
        pids[i] = chips[i].pid;
    return i;
}

int tpu_metrics(int port, long long *device_ids, long long *memory_usage,
                long long *total_memory, double *duty_cycle_pct, int n)
{
    struct chip chips[MAX_CHIPS];
    int m, p, i, count = load(chips, &m, &p);
    (void)port;
    if (m)
        return m;
    if (count < 0)
        return count;
    for (i = 0; i < count && i < n; i++) {
        device_ids[i] = chips[i].id;
        memory_usage[i] = chips[i].used;
        total_memory[i] = chips[i].total;
        duty_cycle_pct[i] = chips[i].duty;
    }
    return i;
}

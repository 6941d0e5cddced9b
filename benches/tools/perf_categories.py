"""Where a bridge profile's time goes, by kind of work: the README's top-five
tables. Usage: python3 benches/tools/perf_categories.py perf.data

Record one with `perf record -F 499 -g -p $(pgrep -f "transfer-bridge serve")`
while a stage of `cargo bench --bench e2e` runs. Self time per symbol is
summed into the first category whose pattern matches; "other" is the long
tail (mostly the bridge's own and its crates' small functions).
"""
import re,subprocess,sys,collections
cats=[
 ("thread hand-offs (scheduler, futex, wake-ups)", r"finish_task_switch|_raw_spin_unlock|futex|__schedule|schedule|try_to_wake|pthread_cond|park|syscall$|Waker|SyncSignal|flume|epoll|do_syscall|irqentry|exit_to_user"),
 ("allocator (malloc/free)", r"malloc|_int_free|cfree|unlink_chunk|consolidate|^mi_|_mi_|realloc|__rdl_|__rust_alloc|__rust_dealloc"),
 ("SQLite (VM, B-tree, WAL, JSON1, page cache)", r"^sqlite3|^pcache|^wal|^json|^pager|balance|btree|Vdbe|^sqlx"),
 ("kernel I/O (writes, fsync, page cache, virtio)", r"mark_buffer_dirty|iowrite|copy_folio|filemap|_copy_to_iter|_copy_from_iter|ext4|jbd2|blk_|bio_|tcp_|__dev_queue|ip_|skb|sock_|inet_|loopback"),
 ("memcpy/memmove/memcmp", r"memmove|memcpy|memcmp|memset"),
 ("adaptive-policy maths", r"pow|ieee754|Durations|adaptive|floor|__log|exp"),
 ("HTTP (hyper, axum, reqwest, tower)", r"hyper|axum|reqwest|tower|http::|httparse"),
 ("JSON (serde)", r"serde"),
 ("AMQP (lapin, amq-protocol)", r"lapin|amq_protocol"),
 ("tokio runtime", r"tokio"),
]
f=sys.argv[1]
out=subprocess.run(["perf","report","-i",f,"--no-children","--sort","sym","-g","none","--stdio"],capture_output=True,text=True).stdout
tot=collections.Counter()
for line in out.splitlines():
    m=re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)",line)
    if not m: continue
    pct=float(m.group(1)); sym=m.group(3).strip()
    for name,rx in cats:
        if re.search(rx,sym):
            tot[name]+=pct; break
    else:
        tot["other"]+=pct
for name,p in tot.most_common(7):
    print(f"{p:5.1f}%  {name}")

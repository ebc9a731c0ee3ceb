//! A trivial job for the benchmark: prints the wall-clock time at which it
//! started running (nanoseconds since the epoch) and exits 0.

fn main() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    println!("{now}");
}

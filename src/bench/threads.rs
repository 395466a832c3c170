//! Where a process's CPU went, by thread: librdkafka's threads (`rdk:broker…`, `rdk:main`), the
//! Tokio runtime's workers (`tokio-rt-worker`), the main thread. The stage benchmark prints it for
//! each pass, so a ratio can be read as "the stage's own work" against "what Kafka costs either way".

use std::collections::BTreeMap;

/// What one name's threads have used ([`snapshot`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCpu {
    /// On the CPU, in nanoseconds (`schedstat`).
    ns: u64,
    /// Of it in the kernel and in user space, in clock ticks (`stat`): only their proportion is used.
    system_ticks: u64,
    user_ticks: u64,
    threads: usize,
}

/// The CPU each name's live threads in this process have used, the digits of a name dropped
/// (`rdk:broker1` and `rdk:broker2` are one `rdk:broker`), from `/proc/self/task/*`.
pub fn snapshot() -> BTreeMap<String, ThreadCpu> {
    let mut by_name = BTreeMap::<String, ThreadCpu>::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(stat), Ok(schedstat)) = (
            std::fs::read_to_string(path.join("stat")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        // "tid (comm) state …": the name may hold spaces, so the fields start after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        // utime and stime are the 14th and 15th fields of the line, the 12th and 13th after comm.
        let (Some(user_ticks), Some(system_ticks), Some(ns)) = (
            tick(11),
            tick(12),
            schedstat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let name: String = stat[open + 1..close]
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let entry = by_name.entry(name).or_default();
        entry.ns += ns;
        entry.user_ticks += user_ticks;
        entry.system_ticks += system_ticks;
        entry.threads += 1;
    }
    by_name
}

/// Where a phase's CPU went, by thread name, between two [`snapshot`] snapshots — "name ×threads
/// share % (kernel %)", largest first, those under 2 % left out.
pub fn shares(before: &BTreeMap<String, ThreadCpu>, after: &BTreeMap<String, ThreadCpu>) -> String {
    let mut spent: Vec<(&str, ThreadCpu)> = after
        .iter()
        .map(|(name, now)| {
            let earlier = before.get(name).copied().unwrap_or_default();
            let delta = ThreadCpu {
                ns: now.ns.saturating_sub(earlier.ns),
                system_ticks: now.system_ticks.saturating_sub(earlier.system_ticks),
                user_ticks: now.user_ticks.saturating_sub(earlier.user_ticks),
                threads: now.threads,
            };
            (name.as_str(), delta)
        })
        .collect();
    let total = spent.iter().map(|(_, cpu)| cpu.ns).sum::<u64>().max(1) as f64;
    spent.sort_by_key(|(_, cpu)| std::cmp::Reverse(cpu.ns));
    spent
        .iter()
        .filter(|(_, cpu)| cpu.ns as f64 / total >= 0.02)
        .map(|(name, cpu)| {
            let ticks = (cpu.system_ticks + cpu.user_ticks).max(1) as f64;
            format!(
                "{name} ×{} {:.0} % (kernel {:.0} %)",
                cpu.threads,
                cpu.ns as f64 / total * 100.0,
                cpu.system_ticks as f64 / ticks * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_shows_under_its_name_with_its_share() {
        let before = snapshot();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let (spun, spin_done) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name("spin42".into())
            .spawn(move || {
                // Until this thread has had 40 ms of CPU by its own clock, however busy the host.
                let own = || {
                    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
                    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
                };
                let mut x = 0u64;
                while own() < 40_000_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                spun.send(()).expect("the test waits");
                // Alive until the second snapshot: only live threads are read.
                wait.recv().ok();
            })
            .expect("thread");
        spin_done.recv().expect("spun");
        let after = snapshot();
        done.send(()).expect("spinner waits");
        spinner.join().expect("joined");

        let spin = after.get("spin").expect("digits dropped from the name");
        assert_eq!(spin.threads, 1);
        assert!(spin.ns >= 40_000_000, "{spin:?}");
        let text = shares(&before, &after);
        assert!(text.contains("spin ×1 "), "{text}");
        assert!(text.contains("(kernel "), "{text}");
    }
}

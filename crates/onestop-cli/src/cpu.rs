//! Where the cores went during a benchmark phase: the service's process, the load generator's
//! own, and the whole machine, read from Linux's `/proc` (elsewhere the report leaves it out).
//!
//! A closed loop is limited either by waiting (a sync, a lock) or by the cores; this says which.

use std::time::Duration;

/// Linux reports times in `/proc` in ticks of `USER_HZ`, which is 100 a second for user space.
const TICKS_A_SECOND: u64 = 100;

/// The cores' time at one instant.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    service: Duration,
    generator: Duration,
    machine_busy: u64,
    machine_all: u64,
    machine_cores: usize,
}

/// What one phase used.
#[derive(Debug, PartialEq)]
pub struct Used {
    /// Cores the service kept busy on average (1.0 is one core all the time).
    pub service_cores: f64,
    pub generator_cores: f64,
    /// The share of the machine's cores that were busy, from 0 to 1, with their number.
    pub machine_busy: f64,
    pub machine_cores: usize,
}

/// The CPU time (user and system) a process has used, from the text of `/proc/PID/stat`.
fn process_time(stat: &str) -> Option<Duration> {
    // The command name may hold spaces and parentheses: the fields start after the last `)`.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 1000 / TICKS_A_SECOND))
}

/// Busy and total ticks of all cores, and how many cores, from `/proc/stat` (the first line
/// sums the `cpuN` lines that follow, one a core).
fn machine_time(stat: &str) -> Option<(u64, u64, usize)> {
    let line = stat.lines().next()?;
    let ticks: Vec<u64> = line
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy; guest
    // time is already inside user.
    let all: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    let cores = stat
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("cpu"))
        .filter(|l| l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some((all - idle, all, cores.max(1)))
}

/// The cores' time now, of the service (by its process id) and of this process.
pub fn snapshot(service_pid: u32) -> Option<Snapshot> {
    let read = |path: String| std::fs::read_to_string(path).ok();
    let service = process_time(&read(format!("/proc/{service_pid}/stat"))?)?;
    let generator = process_time(&read("/proc/self/stat".to_owned())?)?;
    let (machine_busy, machine_all, machine_cores) = machine_time(&read("/proc/stat".to_owned())?)?;
    Some(Snapshot { service, generator, machine_busy, machine_all, machine_cores })
}

/// What the cores did between two snapshots taken `elapsed` apart (ratios for a report, not
/// money: floating point is fine here).
#[allow(clippy::float_arithmetic)]
pub fn used(before: Snapshot, after: Snapshot, elapsed: Duration) -> Option<Used> {
    let seconds = elapsed.as_secs_f64();
    let all = after.machine_all.checked_sub(before.machine_all)?;
    if seconds <= 0.0 || all == 0 {
        return None;
    }
    Some(Used {
        service_cores: after.service.checked_sub(before.service)?.as_secs_f64() / seconds,
        generator_cores: after.generator.checked_sub(before.generator)?.as_secs_f64() / seconds,
        machine_busy: after.machine_busy.checked_sub(before.machine_busy)? as f64 / all as f64,
        machine_cores: after.machine_cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_time_is_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (onestop (serve) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 130 0 0 20 0 17 0 100 1000 10";
        assert_eq!(process_time(stat), Some(Duration::from_millis(3_800)));
        assert_eq!(process_time("4242 (onestop) S 1"), None);
    }

    #[test]
    fn the_machine_is_busy_outside_idle_and_iowait() {
        let stat = "cpu  600 0 200 1000 200 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n\
                    cpu1 1 2 3 4 5 6 7 8 9 10\nintr 5 6\n";
        assert_eq!(machine_time(stat), Some((800, 2_000, 2)));
        assert_eq!(machine_time("intr 1 2 3"), None);
    }

    #[test]
    fn usage_is_cores_over_the_phase() {
        let at = |service_ms, generator_ms, busy, all| Snapshot {
            service: Duration::from_millis(service_ms),
            generator: Duration::from_millis(generator_ms),
            machine_busy: busy,
            machine_all: all,
            machine_cores: 2,
        };
        let phase =
            used(at(1_000, 500, 100, 1_000), at(3_000, 1_000, 460, 1_400), Duration::from_secs(2))
                .expect("a phase");
        assert!((phase.service_cores - 1.0).abs() < 1e-9);
        assert!((phase.generator_cores - 0.25).abs() < 1e-9);
        assert!((phase.machine_busy - 0.9).abs() < 1e-9);
        assert_eq!(phase.machine_cores, 2);
        assert_eq!(used(at(0, 0, 0, 5), at(0, 0, 0, 5), Duration::from_secs(1)), None);
    }
}

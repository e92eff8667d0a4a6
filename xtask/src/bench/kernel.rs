//! What the kernel says about a daemon: its BPF programs' run time (with
//! `kernel.bpf_stats_enabled`), the memory charged for its maps, its RSS
//! and CPU time. All of it is read from `/proc`, never through the BPF
//! syscall, so it works where self-protection keeps other processes away
//! from the enforcer's objects. (The bench's own programs, in `floor`,
//! are read the same way.)

use std::{collections::BTreeMap, fs, os::fd::AsRawFd};

use anyhow::{Context, Result};

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled` on for as long as this lives, then restored
/// to what it was, on every path out (errors included).
pub(crate) struct BpfStats {
    before: String,
}

impl BpfStats {
    pub(crate) fn enable() -> Result<Self> {
        let before =
            fs::read_to_string(BPF_STATS).with_context(|| format!("reading {BPF_STATS}"))?;
        fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(Self { before })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, self.before.trim());
    }
}

/// One program a process holds, from its descriptor's fdinfo.
#[derive(Clone, Debug)]
pub(crate) struct Program {
    /// From `/proc/kallsyms` (`bpf_prog_<tag>_<name>`), else the type and id.
    pub name: String,
    pub prog_type: u32,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    /// ns per run in each pass it ran in, when measured over passes (see
    /// [`over_passes`]).
    pub pass_ns: Vec<f64>,
}

impl Program {
    /// The median over passes where there were passes, else the mean.
    pub(crate) fn ns_per_run(&self) -> Option<f64> {
        if !self.pass_ns.is_empty() {
            return Some(super::stats::median(&self.pass_ns));
        }
        (self.run_cnt > 0).then(|| self.run_time_ns as f64 / self.run_cnt as f64)
    }
}

/// The programs' statistics over passes, each read before and after:
/// run time and count summed, and each pass's ns per run kept, so that
/// one pass the host slowed down does not decide the value.
pub(crate) fn over_passes(passes: &[(Vec<Program>, Vec<Program>)]) -> Vec<Program> {
    let mut totals: BTreeMap<&str, Program> = BTreeMap::new();
    for (before, after) in passes {
        for program in after {
            let earlier = before.iter().find(|p| p.name == program.name);
            let run_time_ns = program.run_time_ns - earlier.map_or(0, |p| p.run_time_ns);
            let run_cnt = program.run_cnt - earlier.map_or(0, |p| p.run_cnt);
            let total = totals.entry(&program.name).or_insert_with(|| Program {
                run_time_ns: 0,
                run_cnt: 0,
                pass_ns: Vec::new(),
                ..program.clone()
            });
            total.run_time_ns += run_time_ns;
            total.run_cnt += run_cnt;
            if run_cnt > 0 {
                total.pass_ns.push(run_time_ns as f64 / run_cnt as f64);
            }
        }
    }
    totals.into_values().collect()
}

fn fdinfos(pid: u32) -> Result<Vec<String>> {
    let mut infos = Vec::new();
    for entry in
        fs::read_dir(format!("/proc/{pid}/fdinfo")).with_context(|| format!("pid {pid}"))?
    {
        if let Ok(info) = fs::read_to_string(entry?.path()) {
            infos.push(info);
        }
    }
    Ok(infos)
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| Some(line.strip_prefix(name)?.trim()))
}

fn number(info: &str, name: &str) -> Option<u64> {
    field(info, name)?.parse().ok()
}

/// Every BPF program the process `pid` holds a descriptor of, once each,
/// sorted by name.
pub(crate) fn programs(pid: u32) -> Result<Vec<Program>> {
    let names = jited_names();
    let mut programs = BTreeMap::new();
    for info in fdinfos(pid)? {
        let (Some(id), Some(prog_type)) = (number(&info, "prog_id:"), number(&info, "prog_type:"))
        else {
            continue;
        };
        let tag = field(&info, "prog_tag:").unwrap_or_default();
        let name = names
            .get(tag)
            .cloned()
            .unwrap_or_else(|| format!("type {prog_type} id {id}"));
        programs.insert(id, program(&info, name, prog_type));
    }
    let mut programs: Vec<Program> = programs.into_values().collect();
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(programs)
}

/// A program this process holds the descriptor `fd` of, under `name`.
pub(crate) fn own_program(fd: &impl AsRawFd, name: &str) -> Result<Program> {
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let info = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let prog_type = number(&info, "prog_type:").unwrap_or(0);
    Ok(program(&info, name.to_string(), prog_type))
}

/// A program's run statistics from its fdinfo.
fn program(info: &str, name: String, prog_type: u64) -> Program {
    Program {
        name,
        prog_type: prog_type as u32,
        run_time_ns: number(info, "run_time_ns:").unwrap_or(0),
        run_cnt: number(info, "run_cnt:").unwrap_or(0),
        pass_ns: Vec::new(),
    }
}

/// Program names by tag, from the JIT's symbols (`bpf_prog_<tag>_<name>`).
/// Empty where `net.core.bpf_jit_kallsyms` is off.
fn jited_names() -> BTreeMap<String, String> {
    let Ok(symbols) = fs::read_to_string("/proc/kallsyms") else {
        return BTreeMap::new();
    };
    symbols
        .lines()
        .filter(|line| line.ends_with("[bpf]"))
        .filter_map(|line| {
            let symbol = line.split_whitespace().nth(2)?.strip_prefix("bpf_prog_")?;
            let (tag, name) = symbol.split_once('_')?;
            (tag.len() == 16).then(|| (tag.to_string(), name.to_string()))
        })
        .collect()
}

/// Maps the process holds descriptors of: their count and the bytes the
/// kernel charges for them (`memlock:` in fdinfo), each map once.
pub(crate) fn map_memory(pid: u32) -> Result<(usize, u64)> {
    let mut maps = BTreeMap::new();
    for info in fdinfos(pid)? {
        if let (Some(id), Some(_)) = (number(&info, "map_id:"), field(&info, "map_type:")) {
            maps.insert(id, number(&info, "memlock:").unwrap_or(0));
        }
    }
    Ok((maps.len(), maps.values().sum()))
}

/// A process's resident memory, in KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rss {
    /// `VmRSS`: everything resident, mappings of kernel maps included.
    pub total_kib: u64,
    /// Resident pages of mapped BPF maps (the event ring buffer): kernel
    /// memory, charged to the map and counted with the kernel's maps.
    pub kernel_maps_kib: u64,
}

impl Rss {
    /// What the process itself holds: heap, stacks, code.
    pub(crate) fn own_kib(&self) -> u64 {
        self.total_kib.saturating_sub(self.kernel_maps_kib)
    }
}

pub(crate) fn rss(pid: u32) -> Result<Rss> {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let kib = |line: &str, key: &str| -> Option<u64> {
        line.strip_prefix(key)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    };
    let (mut total_kib, mut kernel_maps_kib) = (0, 0);
    let mut bpf_map = false;
    for line in smaps.lines() {
        // A mapping's header (address range, perms, ..., name); every
        // other line is a `Key:` field of the mapping above.
        if line
            .split_whitespace()
            .next()
            .is_some_and(|first| !first.ends_with(':'))
        {
            bpf_map = line.ends_with("anon_inode:bpf-map");
        } else if let Some(value) = kib(line, "Rss:") {
            total_kib += value;
            if bpf_map {
                kernel_maps_kib += value;
            }
        }
    }
    Ok(Rss {
        total_kib,
        kernel_maps_kib,
    })
}

/// User plus system CPU time of the whole process, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / per_second as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(name: &str, run_time_ns: u64, run_cnt: u64) -> Program {
        Program {
            name: name.to_string(),
            prog_type: 18,
            run_time_ns,
            run_cnt,
            pass_ns: Vec::new(),
        }
    }

    #[test]
    fn over_passes_takes_each_pass_apart_and_the_median_of_them() {
        let passes = [
            (
                vec![reading("connect4", 1_000, 10)],
                vec![reading("connect4", 2_000, 20), reading("new", 500, 5)],
            ),
            (
                vec![reading("connect4", 2_000, 20), reading("new", 500, 5)],
                vec![reading("connect4", 7_000, 30), reading("new", 500, 5)],
            ),
            (
                vec![reading("connect4", 7_000, 30), reading("new", 500, 5)],
                vec![reading("connect4", 8_200, 40), reading("new", 500, 5)],
            ),
        ];
        let programs = over_passes(&passes);
        let connect4 = programs.iter().find(|p| p.name == "connect4").unwrap();
        assert_eq!(connect4.pass_ns, [100.0, 500.0, 120.0]);
        assert_eq!((connect4.run_time_ns, connect4.run_cnt), (7_200, 30));
        assert_eq!(connect4.ns_per_run(), Some(120.0));
        // Read first after the first pass: all it ran counts to that pass;
        // passes where it did not run add nothing.
        let new = programs.iter().find(|p| p.name == "new").unwrap();
        assert_eq!(new.pass_ns, [100.0]);
        assert_eq!(new.ns_per_run(), Some(100.0));
    }
}

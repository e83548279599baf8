//! The terminal summary: plain text that reads at 80 columns.

use std::io::{self, Write};

use super::errno;
use super::summary::{Process, Summary};

/// Width the text is laid out for.
pub const WIDTH: usize = 80;

/// `s` cut to `w` characters, ending in `…` when cut.
pub fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    let mut out: String = s.chars().take(w.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` cut to its last `w` characters, starting with `…` when cut (for paths).
pub fn fit_end(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        return s.to_string();
    }
    let mut out = String::from("…");
    out.extend(s.chars().skip(n + 1 - w));
    out
}

/// A position, short: exact below 10000, else three significant digits and k/M/G/T.
pub fn short(n: u64) -> String {
    if n < 10_000 {
        return n.to_string();
    }
    let units = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let v = n as f64;
    for (scale, u) in units {
        if v >= scale {
            let x = v / scale;
            return if x >= 100.0 {
                format!("{x:.0}{u}")
            } else if x >= 10.0 {
                format!("{x:.1}{u}")
            } else {
                format!("{x:.2}{u}")
            };
        }
    }
    n.to_string()
}

/// The program a process runs, for display: exec'd path and argv, or argv, or nothing.
pub fn command_line(p: &Process) -> Option<String> {
    let argv = p.argv.as_ref().filter(|a| !a.is_empty());
    command(p.path.as_deref(), argv.map(Vec::as_slice))
}

/// `ls -l /tmp  (/bin/ls)`: the arguments, and the path when `argv[0]` is not it.
pub fn command(path: Option<&str>, argv: Option<&[String]>) -> Option<String> {
    let argv = argv.filter(|a| !a.is_empty());
    match (path, argv) {
        (Some(path), Some(a)) if a[0] == path => Some(a.join(" ")),
        (Some(path), Some(a)) => Some(format!("{}  ({path})", a.join(" "))),
        (Some(path), None) => Some(path.to_string()),
        (None, Some(a)) => Some(a.join(" ")),
        (None, None) => None,
    }
}

fn shown(p: &Process, all: bool) -> bool {
    all || !p.kernel_thread || p.syscalls > 0 || !p.execs.is_empty()
}

fn line(out: &mut dyn Write, s: &str) -> io::Result<()> {
    writeln!(out, "{}", fit(s.trim_end(), WIDTH))
}

fn heading(out: &mut dyn Write, s: &str) -> io::Result<()> {
    writeln!(out)?;
    line(out, s)
}

fn str_field<'a>(
    m: Option<&'a serde_json::Map<String, serde_json::Value>>,
    k: &str,
) -> Option<&'a str> {
    m?.get(k)?.as_str()
}

fn header(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    line(out, &format!("vmi report: {}", fit_end(&s.log, WIDTH - 12)))?;
    let span = match (s.first_position, s.last_position) {
        (Some(a), Some(b)) => format!("positions {} {}..{}", s.position_unit, short(a), short(b)),
        _ => "no records".to_string(),
    };
    line(
        out,
        &format!("  {} lines, {} records, {span}", s.lines, s.records),
    )?;
    let rs = s.run_start.as_ref();
    if rs.is_some() {
        let vcpus = rs
            .and_then(|m| m.get("vcpus"))
            .and_then(|v| v.as_i64())
            .map_or(String::new(), |n| {
                format!(", {n} vCPU{}", if n == 1 { "" } else { "s" })
            });
        let group = str_field(rs, "group")
            .or(str_field(s.kernel_ready.as_ref(), "group"))
            .map_or(String::new(), |g| format!(", kernel {g}"));
        line(
            out,
            &format!(
                "  run: vmi {} on {}{vcpus}{group}",
                str_field(rs, "version").unwrap_or("?"),
                str_field(rs, "target").unwrap_or("?")
            ),
        )?;
    } else {
        line(out, "  run: no run_start record (not the start of a run?)")?;
    }
    match &s.run_end {
        Some(e) => {
            let n = |k: &str| e.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            line(
                out,
                &format!(
                    "  ended normally: {} syscall instructions, {} dropped records",
                    n("syscalls"),
                    n("dropped_records")
                ),
            )?;
        }
        None => line(
            out,
            &format!(
                "  did not end normally: no run_end record{}",
                if s.truncated_last_line {
                    ", last line incomplete (QEMU killed?)"
                } else {
                    ""
                }
            ),
        )?,
    }
    if s.warnings.count > 0 {
        line(
            out,
            &format!("  {} warnings (listed at the end)", s.warnings.count),
        )?;
    }
    Ok(())
}

/// Tree prefixes (`├─ `, `│  └─ `, …) for each process, in `s.processes` order.
fn prefixes(s: &Summary, all: bool) -> Vec<String> {
    const MAX_DEPTH: usize = 8;
    let mut out = vec![String::new(); s.processes.len()];
    // (process, the indentation its children continue with)
    let mut stack: Vec<(usize, String)> = Vec::new();
    for &r in s.roots.iter().rev() {
        stack.push((r, String::new()));
    }
    while let Some((i, indent)) = stack.pop() {
        let p = &s.processes[i];
        let kids: Vec<usize> = p
            .children
            .iter()
            .copied()
            .filter(|&c| shown(&s.processes[c], all) || has_shown_descendant(s, c, all))
            .collect();
        for (k, &c) in kids.iter().enumerate().rev() {
            let last = k + 1 == kids.len();
            let depth = s.processes[c].depth;
            let (mark, cont) = if depth > MAX_DEPTH {
                ("", "")
            } else if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            out[c] = format!("{indent}{mark}");
            stack.push((c, format!("{indent}{cont}")));
        }
    }
    out
}

fn has_shown_descendant(s: &Summary, i: usize, all: bool) -> bool {
    let mut stack = s.processes[i].children.clone();
    while let Some(c) = stack.pop() {
        if shown(&s.processes[c], all) {
            return true;
        }
        stack.extend(&s.processes[c].children);
    }
    false
}

fn tree(s: &Summary, all: bool, out: &mut dyn Write) -> io::Result<()> {
    let hidden = s
        .processes
        .iter()
        .filter(|p| !shown(p, all) && !has_shown_descendant(s, p.id, all))
        .count();
    heading(
        out,
        &format!(
            "PROCESS TREE ({} processes{})",
            s.processes.len(),
            if hidden > 0 {
                format!(", {hidden} idle kernel threads not shown; --all lists them")
            } else {
                String::new()
            }
        ),
    )?;
    line(
        out,
        "      PID COMMAND                        START     END  EXIT THR   CALLS",
    )?;
    let pre = prefixes(s, all);
    for p in &s.processes {
        if !shown(p, all) && !has_shown_descendant(s, p.id, all) {
            continue;
        }
        let mut name = p.comm.clone().unwrap_or_else(|| "?".to_string());
        if p.kernel_thread {
            name = format!("[{name}]");
        }
        if p.parent.is_none()
            && let Some(pp) = p.ppid
            && pp != 0
        {
            name = format!("{name} (ppid {pp})");
        }
        let label = fit(&format!("{}{name}", pre[p.id]), 28);
        let start = match p.start {
            Some(x) => short(x),
            None if p.already_running => "before".to_string(),
            None => format!("~{}", short(p.first_seen)),
        };
        let end = p.end.map_or("-".to_string(), short);
        let exit = match (p.exit_code, p.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(sig)) => format!("sig{sig}"),
            (None, None) => "-".to_string(),
        };
        line(
            out,
            &format!(
                "  {:>7} {label:<28} {start:>7} {end:>7} {exit:>5} {:>3} {:>7}",
                p.pid, p.threads, p.syscalls
            ),
        )?;
        if let Some(cmd) = command_line(p) {
            let indent: String = pre[p.id].replace("└─ ", "   ").replace("├─ ", "│  ");
            line(out, &format!("          {indent}  $ {cmd}"))?;
        }
    }
    line(
        out,
        "  START/END: positions (k, M, G = 10^3, 10^6, 10^9); before: already running;",
    )?;
    line(
        out,
        "  ~: first seen there, no start logged; -: not seen. CALLS: system calls.",
    )?;
    line(out, "  EXIT: exit code, or sigN when killed by signal N.")
}

fn file_status(f: &super::summary::FileUse) -> String {
    let mut parts = Vec::new();
    if f.ok > 0 {
        parts.push(if f.ok > 1 {
            format!("ok×{}", f.ok)
        } else {
            "ok".to_string()
        });
    }
    for e in &f.errors {
        parts.push(if e.count > 1 {
            format!("{}×{}", e.name, e.count)
        } else {
            e.name.clone()
        });
    }
    if f.unknown > 0 {
        parts.push(format!("no-result×{}", f.unknown));
    }
    parts.join(",")
}

fn per_process(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let busy: Vec<&Process> = s
        .processes
        .iter()
        .filter(|p| p.syscalls > 0 || !p.execs.is_empty() || !p.files.is_empty())
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    heading(out, "PER PROCESS")?;
    for p in busy {
        let title = format!("── {} {} ", p.pid, p.comm.as_deref().unwrap_or("?"));
        let fill = WIDTH.saturating_sub(title.chars().count());
        writeln!(out)?;
        line(out, &format!("{title}{}", "─".repeat(fill.min(40))))?;
        let threads = if p.threads == 1 {
            "1 thread".to_string()
        } else {
            format!("{} threads", p.threads)
        };
        line(
            out,
            &format!(
                "  {} call{}, {} failed, {threads}; seen {}..{}",
                p.syscalls,
                if p.syscalls == 1 { "" } else { "s" },
                p.failed_syscalls,
                short(p.first_seen),
                short(p.last_seen)
            ),
        )?;
        if !p.top_syscalls.is_empty() {
            let mut text = String::from("  top:");
            for (k, n) in p.top_syscalls.iter().enumerate() {
                let item = if n.failed > 0 {
                    format!(" {} {} ({} failed)", n.name, n.count, n.failed)
                } else {
                    format!(" {} {}", n.name, n.count)
                };
                if text.chars().count() + item.chars().count() + 1 > WIDTH - 2 {
                    line(out, &format!("{text},"))?;
                    text = String::from("      ");
                } else if k > 0 {
                    text.push(',');
                }
                text.push_str(&item);
            }
            line(out, &text)?;
        }
        for e in &p.execs {
            let cmd = command(e.path.as_deref(), e.argv.as_deref()).unwrap_or("?".into());
            line(out, &format!("  exec @{}: {cmd}", short(e.position)))?;
        }
        if p.execs_dropped > 0 {
            line(out, &format!("  … {} more execs not kept", p.execs_dropped))?;
        }
        if !p.files.is_empty() {
            line(out, "  files:")?;
            for f in &p.files {
                let status = file_status(f);
                let head = format!("    {status:<12} {:<8} ", f.syscall);
                let room = WIDTH.saturating_sub(head.chars().count()).max(20);
                let cut = if f.truncated { "…" } else { "" };
                line(out, &format!("{head}{}{cut}", fit_end(&f.path, room)))?;
            }
            if p.files_dropped > 0 {
                line(
                    out,
                    &format!(
                        "    … {} more calls on other paths not kept",
                        p.files_dropped
                    ),
                )?;
            }
        }
    }
    Ok(())
}

fn global(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    if !s.programs.is_empty() {
        heading(out, &format!("PROGRAMS EXECUTED ({})", s.programs.len()))?;
        for p in &s.programs {
            let pids: Vec<String> = p.pids.iter().map(u32::to_string).collect();
            line(
                out,
                &format!("  {:>5}×  {}  (pid {})", p.count, p.path, pids.join(", ")),
            )?;
        }
    }
    if !s.failed_files.is_empty() {
        heading(out, "FAILED OPENS AND EXECS")?;
        for f in &s.failed_files {
            let pids: Vec<String> = f.pids.iter().map(u32::to_string).collect();
            line(
                out,
                &format!(
                    "  {:>5}×  {:<12} {:<8} {}  (pid {})",
                    f.count,
                    f.name,
                    f.syscall,
                    fit_end(&f.path, 40),
                    pids.join(", ")
                ),
            )?;
        }
        let mut names: Vec<&super::summary::FileFailure> = s.failed_files.iter().collect();
        names.sort_by_key(|f| f.errno);
        names.dedup_by_key(|f| f.errno);
        for f in names {
            if let Some(d) = errno::description(f.errno) {
                line(out, &format!("  {}: {d}", f.name))?;
            }
        }
        if s.failed_files_dropped > 0 {
            line(
                out,
                &format!("  … {} more failures not kept", s.failed_files_dropped),
            )?;
        }
    }
    let t = &s.syscalls;
    let without: Vec<String> = t
        .without_result
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    heading(
        out,
        &format!("SYSCALLS ({} calls, {} failed)", t.total, t.failed),
    )?;
    if !without.is_empty() {
        line(out, &format!("  no result: {}", without.join(", ")))?;
    }
    if t.unattributed > 0 {
        line(
            out,
            &format!(
                "  {} by a caller the log does not name (pid 0: the kernel was not readable)",
                t.unattributed
            ),
        )?;
    }
    let mut text = String::from(" ");
    for n in &t.top {
        let item = format!(" {} {}", n.name, n.count);
        if text.chars().count() + item.chars().count() > WIDTH - 2 {
            line(out, &text)?;
            text = String::from(" ");
        }
        text.push_str(&item);
    }
    if text.trim().is_empty() {
        line(out, "  none")?;
    } else {
        line(out, &text)?;
    }
    if !t.errors.is_empty() {
        let errs: Vec<String> = t
            .errors
            .iter()
            .map(|e| format!("{} {}", e.name, e.count))
            .collect();
        line(out, &format!("  errors: {}", errs.join(", ")))?;
    }
    heading(
        out,
        &format!(
            "MODULES ({}, from {} snapshots)",
            s.modules.len(),
            s.snapshots
        ),
    )?;
    if s.modules.is_empty() {
        line(out, "  none seen")?;
    }
    for m in &s.modules {
        line(
            out,
            &format!(
                "  {:<24} {:<20} {:>9}  @{}",
                m.name,
                m.base.as_deref().unwrap_or("?"),
                m.size.map_or("?".to_string(), |n| n.to_string()),
                short(m.first_seen)
            ),
        )?;
    }
    if s.warnings.count > 0 {
        heading(out, &format!("WARNINGS ({})", s.warnings.count))?;
        for w in &s.warnings.first {
            line(out, &format!("  {w}"))?;
        }
        if s.warnings.count > s.warnings.first.len() as u64 {
            line(
                out,
                &format!(
                    "  … {} more",
                    s.warnings.count - s.warnings.first.len() as u64
                ),
            )?;
        }
    }
    Ok(())
}

/// Writes the summary as text; `all` also lists idle kernel threads.
pub fn write(s: &Summary, all: bool, out: &mut dyn Write) -> io::Result<()> {
    header(s, out)?;
    tree(s, all, out)?;
    per_process(s, out)?;
    global(s, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_and_numbers() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit_end("/a/b/c/d", 5), "…/c/d");
        assert_eq!(short(9999), "9999");
        assert_eq!(short(12_345), "12.3k");
        assert_eq!(short(1_500_000), "1.50M");
        assert_eq!(short(250_000_000_000), "250G");
    }
}

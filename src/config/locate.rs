//! YAML key -> line:column, for errors serde cannot locate (validation happens after parsing).

/// Finds the 1-based (line, column) of a dotted key such as `server.port` or
/// `folders[1].local` in YAML text written in block style. Used to point validation errors (which
/// serde does not locate) at the right line.
pub(super) fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize; // first line of the current block
    let mut min_indent = 0usize; // the block's keys are at least this indented
    let mut found = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let (line, indent) = find_key_line(&lines, start, min_indent, name)?;
        found = Some((line + 1, indent + 1));
        start = line + 1;
        min_indent = indent + 1;
        if let Some(n) = index {
            // The n-th "- " item below the key.
            let mut seen = 0;
            let mut item = None;
            for (j, l) in lines.iter().enumerate().skip(start) {
                let ind = l.len() - l.trim_start().len();
                if l.trim().is_empty() || l.trim_start().starts_with('#') {
                    continue;
                }
                if ind < min_indent.saturating_sub(1) && !l.trim_start().starts_with('-') {
                    break;
                }
                if l.trim_start().starts_with("- ") || l.trim() == "-" {
                    if seen == n {
                        item = Some((j, ind));
                        break;
                    }
                    seen += 1;
                }
            }
            let (j, ind) = item?;
            found = Some((j + 1, ind + 1));
            start = j;
            min_indent = ind;
        }
    }
    found
}

fn find_key_line(lines: &[&str], start: usize, min_indent: usize, name: &str) -> Option<(usize, usize)> {
    for (j, l) in lines.iter().enumerate().skip(start) {
        let body = l.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut ind = l.len() - body.len();
        let body = match body.strip_prefix("- ") {
            Some(b) => {
                ind += 2;
                b.trim_start()
            }
            None => body,
        };
        if ind < min_indent && j > start {
            return None;
        }
        if body.starts_with(&format!("{name}:")) {
            return Some((j, ind));
        }
    }
    None
}

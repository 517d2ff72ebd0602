//! Port entries: `"22"` or an inclusive range `"8000-8100"`.

/// A rule's ports as sorted, merged inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortSet {
    ranges: Box<[(u16, u16)]>,
}

impl PortSet {
    /// Parses every entry; the first bad one is the error.
    pub fn parse(entries: &[String]) -> Result<PortSet, String> {
        let mut ranges = entries
            .iter()
            .map(|entry| parse_entry(entry))
            .collect::<Result<Vec<_>, _>>()?;
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (low, high) in ranges {
            match merged.last_mut() {
                Some((_, last_high)) if u32::from(low) <= u32::from(*last_high) + 1 => {
                    *last_high = (*last_high).max(high);
                }
                _ => merged.push((low, high)),
            }
        }
        Ok(PortSet {
            ranges: merged.into_boxed_slice(),
        })
    }

    pub fn contains(&self, port: u16) -> bool {
        // The first range whose upper end reaches `port` is the only candidate.
        let at = self.ranges.partition_point(|&(_, high)| high < port);
        self.ranges.get(at).is_some_and(|&(low, _)| low <= port)
    }
}

fn parse_entry(entry: &str) -> Result<(u16, u16), String> {
    let (low, high) = match entry.split_once('-') {
        Some((low, high)) => (parse_port(entry, low)?, parse_port(entry, high)?),
        None => {
            let port = parse_port(entry, entry)?;
            (port, port)
        }
    };
    if low > high {
        return Err(format!(
            "{entry:?}: the range is reversed; write \"{high}-{low}\""
        ));
    }
    Ok((low, high))
}

fn parse_port(entry: &str, text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err(format!("{entry:?}: port 0 is not a destination port")),
        Ok(port) => Ok(port),
        Err(_) => Err(format!(
            "{entry:?} is not a port (1-65535) or a range such as \"8000-8100\""
        )),
    }
}

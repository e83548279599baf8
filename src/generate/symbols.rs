//! Symbols from outside the image (`--symbols FILE`): a `System.map` (`addr type name`
//! lines, as `nm` prints) or an ELF file with a symbol table (the -dbg package's vmlinux).

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSymbol};

use super::{GenError, Result};

/// Symbol name → link-time address.
#[derive(Debug, Default)]
pub struct SymbolFile {
    map: HashMap<String, u64>,
}

impl SymbolFile {
    /// Address of `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.map.get(name).copied()
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the file had no symbols.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Reads a System.map or an ELF symbol table.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<SymbolFile> {
    let err = |line, what: String| GenError::Symbols {
        file: path.to_owned(),
        line,
        what,
    };
    let mut map = HashMap::new();
    if bytes.starts_with(b"\x7fELF") {
        let file = object::File::parse(bytes).map_err(|e| err(0, e.to_string()))?;
        for s in file.symbols() {
            if let Ok(name) = s.name()
                && !name.is_empty()
            {
                map.entry(name.to_owned()).or_insert(s.address());
            }
        }
        if map.is_empty() {
            return Err(err(0, "ELF file without a symbol table".into()));
        }
        return Ok(SymbolFile { map });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| err(0, format!("not text: {e}")))?;
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_whitespace();
        let (Some(addr), Some(_kind), Some(name)) = (f.next(), f.next(), f.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(err(i + 1, "expected 'address type name'".into()));
        };
        let addr = u64::from_str_radix(addr, 16)
            .map_err(|e| err(i + 1, format!("bad address '{addr}': {e}")))?;
        map.entry(name.to_owned()).or_insert(addr);
    }
    // Debian ships a one-line placeholder System.map pointing at the -dbg package.
    if map.len() < 10 {
        return Err(err(
            1,
            "not a real System.map (Debian's placeholder? the real one is in the -dbg package)"
                .into(),
        ));
    }
    Ok(SymbolFile { map })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_map() {
        let mut text = String::new();
        for i in 0..20 {
            text.push_str(&format!("ffffffff8100{i:04x} T f{i}\n"));
        }
        text.push_str("ffffffff82000000 D init_task\n");
        let s = parse(Path::new("System.map"), text.as_bytes()).unwrap();
        assert_eq!(s.get("init_task"), Some(0xffff_ffff_8200_0000));
        assert_eq!(s.get("f3"), Some(0xffff_ffff_8100_0003));
    }

    #[test]
    fn placeholder_and_garbage() {
        let p = Path::new("System.map");
        let placeholder =
            b"ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n";
        assert!(parse(p, placeholder).is_err());
        assert!(parse(p, b"zz T x\n").is_err());
        assert!(parse(p, &[0xff, 0xfe, 0]).is_err());
        assert!(parse(p, b"\x7fELF garbage").is_err());
    }
}

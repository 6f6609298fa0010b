//! The file patterns `import` takes, as CoreDNS allows them: at most one `*` and one
//! `?`, no `[...]`; and the paths import cycles compare.

use super::*;

/// The path import cycles compare: canonical if it can be had.
pub(super) fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The paths `pattern` names, as Go's `filepath.Glob` (CoreDNS's) finds them: `*` and `?`
/// match within one component (`*` any run, `?` one character, dot files included), `\`
/// escapes; names sorted within each directory. A pattern without those names the path
/// itself, if it exists. Unreadable directories are skipped.
pub(super) fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let wildcard = match component {
            Component::Normal(part) => part
                .to_str()
                .filter(|text| text.contains(['*', '?', '[', '\\'])),
            _ => None,
        };
        let Some(wildcard) = wildcard else {
            for path in &mut found {
                path.push(component);
            }
            continue;
        };
        let glyphs = compile(wildcard)?;
        let mut next = Vec::new();
        for directory in &found {
            let listed = if directory.as_os_str().is_empty() {
                Path::new(".")
            } else {
                directory
            };
            let Ok(entries) = std::fs::read_dir(listed) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| glyphs_match(&glyphs, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| directory.join(name)));
        }
        found = next;
    }
    found.retain(|path| std::fs::symlink_metadata(path).is_ok());
    Ok(found)
}

/// One element of a compiled path-component pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Glyph {
    /// `?`: one character.
    One,
    /// `*`: any run of characters.
    Run,
    /// This character.
    Char(char),
}

/// The glyphs of one path component's pattern; `[` (a class never closed here) and a trailing
/// `\` are errors, as in Go.
pub(super) fn compile(pattern: &str) -> Result<Vec<Glyph>, String> {
    let mut glyphs = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        glyphs.push(match c {
            '*' => Glyph::Run,
            '?' => Glyph::One,
            '[' => return Err("'[' without a closing ']'".to_owned()),
            '\\' => Glyph::Char(chars.next().ok_or("'\\' at the end of a path component")?),
            c => Glyph::Char(c),
        });
    }
    Ok(glyphs)
}

/// Whether `name` matches `glyphs`.
pub(super) fn glyphs_match(glyphs: &[Glyph], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut g, mut n) = (0, 0);
    // Where the last `*` is and how much of the name it takes so far.
    let mut run: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        match glyphs.get(g) {
            Some(Glyph::Run) => {
                run = Some((g, n));
                g += 1;
            }
            Some(Glyph::One) => (g, n) = (g + 1, n + 1),
            Some(Glyph::Char(wanted)) if *wanted == c => (g, n) = (g + 1, n + 1),
            _ => match run {
                Some((run_glyph, run_start)) => {
                    run = Some((run_glyph, run_start + 1));
                    (g, n) = (run_glyph + 1, run_start + 1);
                }
                None => return false,
            },
        }
    }
    glyphs.iter().skip(g).all(|glyph| *glyph == Glyph::Run)
}

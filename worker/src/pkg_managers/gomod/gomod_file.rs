//! go.mod parser (golang.org/x/mod/modfile subset) and a byte-preserving `replace` rewriter.

use common::gomod::{check_main_module_path, check_module_path, check_version};
use common::{Classify, ErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoModError {
    #[error("{file}:{line}: {msg}")]
    Syntax {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{file}:{line}: {msg}")]
    Unsupported {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{file} has no module directive; a go.mod file must start with \"module <path>\".")]
    NoModule { file: String },
    #[error("Cannot apply the dependency replacement {name} => {new_name}@{version}: {reason}.")]
    BadReplacement {
        name: String,
        new_name: String,
        version: String,
        reason: String,
    },
}

impl Classify for GoModError {
    fn kind(&self) -> ErrorKind {
        match self {
            GoModError::Unsupported { .. } => ErrorKind::UnsupportedFeature,
            GoModError::BadReplacement { .. } => ErrorKind::InvalidRequestData,
            _ => ErrorKind::InvalidFileFormat,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Require {
    pub path: String,
    pub version: String,
    pub indirect: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceTarget {
    /// Replace with another module version (downloaded).
    Module { path: String, version: String },
    /// Replace with a directory relative to the go.mod's directory (`./x`, `../x`).
    Local { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    pub old_path: String,
    /// None: all versions of `old_path` are replaced.
    pub old_version: Option<String>,
    pub new: ReplaceTarget,
    /// 1-based line number in go.mod.
    pub line: usize,
    /// Byte span of the statement (first token .. end of line, newline excluded).
    pub(crate) span: (usize, usize),
    pub(crate) in_block: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclude {
    pub path: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoMod {
    pub module: String,
    pub go: Option<String>,
    pub toolchain: Option<String>,
    pub require: Vec<Require>,
    pub replace: Vec<Replace>,
    pub exclude: Vec<Exclude>,
}

impl GoMod {
    /// The replacement that applies to `path@version` (exact version wins over wildcard).
    pub fn replacement_for(&self, path: &str, version: &str) -> Option<&Replace> {
        self.replace
            .iter()
            .find(|r| r.old_path == path && r.old_version.as_deref() == Some(version))
            .or_else(|| {
                self.replace
                    .iter()
                    .find(|r| r.old_path == path && r.old_version.is_none())
            })
    }

    /// `go` directive as (major, minor); missing = 1.16 (go's default).
    pub fn go_version(&self) -> (u32, u32) {
        self.go
            .as_deref()
            .and_then(parse_go_version)
            .unwrap_or((1, 16))
    }
}

/// Parse "1.21", "1.21.0", "1.21rc1" into (1, 21).
pub fn parse_go_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor_raw = it.next().unwrap_or("0");
    let digits: String = minor_raw
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let minor = digits.parse().ok()?;
    Some((major, minor))
}

fn valid_go_version(v: &str) -> bool {
    // 1.N, 1.N.P, 1.NrcX, 1.NbetaX
    let b = v.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return false;
    }
    let core_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (core, pre) = v.split_at(core_end);
    if core.split('.').any(|p| p.is_empty()) || core.split('.').count() > 3 {
        return false;
    }
    if pre.is_empty() {
        return true;
    }
    let rest = pre.strip_prefix("rc").or_else(|| pre.strip_prefix("beta"));
    matches!(rest, Some(r) if !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
}

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    quoted: bool,
    start: usize,
}

#[derive(Debug)]
struct RawLine {
    toks: Vec<Tok>,
    comment: Option<String>,
    line_no: usize,
    /// byte offset of the physical line start and of its end (newline excluded)
    line_start: usize,
    line_end: usize,
}

fn is_ident_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | ',') && !c.is_control()
}

fn lex_line(
    file: &str,
    text: &str,
    line_no: usize,
    line_start: usize,
) -> Result<RawLine, GoModError> {
    let err = |msg: String| GoModError::Syntax {
        file: file.to_string(),
        line: line_no,
        msg,
    };
    let mut toks = Vec::new();
    let mut comment = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (off, c) = chars[i];
        if c == ' ' || c == '\t' || c == '\r' {
            i += 1;
            continue;
        }
        if text[off..].starts_with("//") {
            comment = Some(text[off + 2..].trim_end_matches('\r').to_string());
            break;
        }
        if text[off..].starts_with("/*") {
            return Err(err(
                "go.mod files must use // comments, not /* */ comments".into()
            ));
        }
        match c {
            '(' | ')' | '[' | ']' | '{' | '}' | ',' => {
                toks.push(Tok {
                    text: c.to_string(),
                    quoted: false,
                    start: line_start + off,
                });
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    let (_, ch) = chars[i];
                    i += 1;
                    match ch {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => {
                            let Some(&(_, e)) = chars.get(i) else { break };
                            i += 1;
                            match e {
                                '\\' => s.push('\\'),
                                '"' => s.push('"'),
                                '\'' => s.push('\''),
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                _ => {
                                    return Err(err(format!(
                                        "invalid escape \\{e} in quoted string"
                                    )))
                                }
                            }
                        }
                        _ => s.push(ch),
                    }
                }
                if !closed {
                    return Err(err("unterminated quoted string".into()));
                }
                toks.push(Tok {
                    text: s,
                    quoted: true,
                    start: line_start + off,
                });
            }
            '`' => {
                let rest = &text[off + 1..];
                let Some(end) = rest.find('`') else {
                    return Err(err("unterminated raw string".into()));
                };
                toks.push(Tok {
                    text: rest[..end].to_string(),
                    quoted: true,
                    start: line_start + off,
                });
                let stop = off + 1 + end + 1;
                while i < chars.len() && chars[i].0 < stop {
                    i += 1;
                }
            }
            c if is_ident_char(c) => {
                let start = off;
                let mut end = off;
                while i < chars.len() {
                    let (o, ch) = chars[i];
                    if !is_ident_char(ch) || ch == '"' || ch == '`' || text[o..].starts_with("//") {
                        break;
                    }
                    end = o + ch.len_utf8();
                    i += 1;
                }
                toks.push(Tok {
                    text: text[start..end].to_string(),
                    quoted: false,
                    start: line_start + start,
                });
            }
            c => return Err(err(format!("unexpected input character {c:?}"))),
        }
    }
    Ok(RawLine {
        toks,
        comment,
        line_no,
        line_start,
        line_end: line_start + text.trim_end_matches('\r').len(),
    })
}

struct Stmt<'a> {
    verb: String,
    args: &'a [Tok],
    line: &'a RawLine,
    in_block: bool,
}

fn is_dir_path(p: &str) -> bool {
    p == "."
        || p == ".."
        || p.starts_with("./")
        || p.starts_with("../")
        || p.starts_with(".\\")
        || p.starts_with("..\\")
}

fn is_abs_path(p: &str) -> bool {
    p.starts_with('/')
        || p.starts_with('\\')
        || (p.len() >= 3 && p.as_bytes()[1] == b':' && p.as_bytes()[0].is_ascii_alphabetic())
}

fn is_indirect(comment: &Option<String>) -> bool {
    let Some(c) = comment else { return false };
    let first = c.split_whitespace().next().unwrap_or("");
    first == "indirect" || first.starts_with("indirect;")
}

/// Parse go.mod text. `file` is used in messages (e.g. "sub/go.mod").
pub fn parse_go_mod(file: &str, text: &str) -> Result<GoMod, GoModError> {
    let mut lines = Vec::new();
    let mut offset = 0usize;
    for (idx, phys) in text.split('\n').enumerate() {
        lines.push(lex_line(file, phys, idx + 1, offset)?);
        offset += phys.len() + 1;
    }
    let mut stmts: Vec<Stmt> = Vec::new();
    let mut block: Option<(String, usize)> = None;
    for l in &lines {
        if l.toks.is_empty() {
            continue;
        }
        let syntax = |msg: &str| GoModError::Syntax {
            file: file.to_string(),
            line: l.line_no,
            msg: msg.to_string(),
        };
        if let Some((verb, _)) = &block {
            let first = &l.toks[0];
            if !first.quoted && first.text == ")" {
                if l.toks.len() > 1 {
                    return Err(syntax("unexpected input after \")\""));
                }
                block = None;
                continue;
            }
            if l.toks
                .iter()
                .any(|t| !t.quoted && (t.text == "(" || t.text == ")"))
            {
                return Err(syntax("unexpected parenthesis inside a block"));
            }
            stmts.push(Stmt {
                verb: verb.clone(),
                args: &l.toks,
                line: l,
                in_block: true,
            });
            continue;
        }
        let verb = &l.toks[0];
        if verb.quoted {
            return Err(syntax("a directive must start with a keyword"));
        }
        if l.toks.len() >= 2 && !l.toks[1].quoted && l.toks[1].text == "(" {
            if l.toks.len() == 3 && !l.toks[2].quoted && l.toks[2].text == ")" {
                continue; // empty one-line block
            }
            if l.toks.len() > 2 {
                return Err(syntax("\"(\" must be followed by a newline"));
            }
            block = Some((verb.text.clone(), l.line_no));
            continue;
        }
        if l.toks
            .iter()
            .any(|t| !t.quoted && (t.text == "(" || t.text == ")"))
        {
            return Err(syntax("unexpected parenthesis"));
        }
        stmts.push(Stmt {
            verb: verb.text.clone(),
            args: &l.toks[1..],
            line: l,
            in_block: false,
        });
    }
    if let Some((verb, line)) = block {
        return Err(GoModError::Syntax {
            file: file.to_string(),
            line,
            msg: format!("unterminated \"{verb} (\" block"),
        });
    }

    let mut module: Option<String> = None;
    let mut go = None;
    let mut toolchain = None;
    let mut require = Vec::new();
    let mut replace = Vec::new();
    let mut exclude = Vec::new();
    for s in &stmts {
        let line = s.line.line_no;
        let syntax = |msg: String| GoModError::Syntax {
            file: file.to_string(),
            line,
            msg,
        };
        let a: Vec<&str> = s.args.iter().map(|t| t.text.as_str()).collect();
        match s.verb.as_str() {
            "module" => {
                if module.is_some() {
                    return Err(syntax("repeated module statement".into()));
                }
                if a.len() != 1 {
                    return Err(syntax("usage: module module/path".into()));
                }
                check_main_module_path(a[0]).map_err(|e| syntax(e.to_string()))?;
                module = Some(a[0].to_string());
            }
            "go" => {
                if go.is_some() {
                    return Err(syntax("repeated go statement".into()));
                }
                if a.len() != 1 || !valid_go_version(a[0]) {
                    return Err(syntax(format!(
                        "invalid go version {:?}: must match format 1.23.0",
                        a.join(" ")
                    )));
                }
                go = Some(a[0].to_string());
            }
            "toolchain" => {
                if a.len() != 1 {
                    return Err(syntax("usage: toolchain name".into()));
                }
                toolchain = Some(a[0].to_string());
            }
            "require" | "exclude" => {
                if a.len() != 2 {
                    return Err(syntax(format!("usage: {} module/path v1.2.3", s.verb)));
                }
                check_module_path(a[0]).map_err(|e| syntax(e.to_string()))?;
                check_version(a[0], a[1]).map_err(|e| syntax(e.to_string()))?;
                if s.verb == "require" {
                    require.push(Require {
                        path: a[0].to_string(),
                        version: a[1].to_string(),
                        indirect: is_indirect(&s.line.comment),
                    });
                } else {
                    exclude.push(Exclude {
                        path: a[0].to_string(),
                        version: a[1].to_string(),
                    });
                }
            }
            "replace" => {
                let usage = || {
                    syntax(
                        "usage: replace module/path [v1.2.3] => other/module v1.4 or => ./local/path"
                            .into(),
                    )
                };
                let arrow = a.iter().position(|x| *x == "=>").ok_or_else(usage)?;
                if !(arrow == 1 || arrow == 2) || !(a.len() == arrow + 2 || a.len() == arrow + 3) {
                    return Err(usage());
                }
                let old_path = a[0];
                check_module_path(old_path)
                    .or_else(|_| check_main_module_path(old_path))
                    .map_err(|e| syntax(e.to_string()))?;
                let old_version = if arrow == 2 {
                    check_version(old_path, a[1]).map_err(|e| syntax(e.to_string()))?;
                    Some(a[1].to_string())
                } else {
                    None
                };
                let new_path = a[arrow + 1];
                let new = if a.len() == arrow + 3 {
                    let nv = a[arrow + 2];
                    if is_dir_path(new_path) || is_abs_path(new_path) {
                        return Err(syntax(format!(
                            "replacement directory {new_path} must not have a version"
                        )));
                    }
                    check_module_path(new_path).map_err(|e| syntax(e.to_string()))?;
                    check_version(new_path, nv).map_err(|e| syntax(e.to_string()))?;
                    ReplaceTarget::Module {
                        path: new_path.to_string(),
                        version: nv.to_string(),
                    }
                } else if is_abs_path(new_path) {
                    return Err(GoModError::Unsupported {
                        file: file.to_string(),
                        line,
                        msg: format!(
                            "the replacement of {old_path} points to the absolute path {new_path}; absolute replacement paths are not supported, use a path relative to the go.mod file (./ or ../)"
                        ),
                    });
                } else if is_dir_path(new_path) {
                    ReplaceTarget::Local {
                        path: new_path.to_string(),
                    }
                } else {
                    return Err(syntax(format!(
                        "replacement module {new_path} without version must be a directory path (starting with ./ or ../)"
                    )));
                };
                let start = s.args.first().map(|t| t.start).unwrap_or(s.line.line_start);
                let start = if s.in_block {
                    start
                } else {
                    s.line.toks[0].start
                };
                replace.push(Replace {
                    old_path: old_path.to_string(),
                    old_version,
                    new,
                    line,
                    span: (start, s.line.line_end),
                    in_block: s.in_block,
                });
            }
            // tolerated: retract, godebug, tool, ignore, and anything newer
            _ => {}
        }
    }
    let module = module.ok_or_else(|| GoModError::NoModule {
        file: file.to_string(),
    })?;
    Ok(GoMod {
        module,
        go,
        toolchain,
        require,
        replace,
        exclude,
    })
}

/// One `go mod edit -replace name=new_name@version` edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaceEdit {
    pub name: String,
    pub new_name: String,
    pub version: String,
}

/// Apply `go mod edit -replace` semantics to go.mod text: the first existing replace of `name`
/// (any old version) is rewritten in place, other replaces of `name` are deleted, otherwise a
/// `replace` line is appended. Every other byte of the file is preserved.
pub fn apply_replace_edits(
    file: &str,
    text: &str,
    edits: &[ReplaceEdit],
) -> Result<String, GoModError> {
    let mut text = text.to_string();
    for e in edits {
        let bad = |reason: String| GoModError::BadReplacement {
            name: e.name.clone(),
            new_name: e.new_name.clone(),
            version: e.version.clone(),
            reason,
        };
        check_module_path(&e.name).map_err(|x| bad(x.to_string()))?;
        check_module_path(&e.new_name).map_err(|x| bad(x.to_string()))?;
        check_version(&e.new_name, &e.version).map_err(|x| bad(x.to_string()))?;
        let parsed = parse_go_mod(file, &text)?;
        let matches: Vec<&Replace> = parsed
            .replace
            .iter()
            .filter(|r| r.old_path == e.name)
            .collect();
        let body = format!("{} => {} {}", e.name, e.new_name, e.version);
        if matches.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("\nreplace {body}\n"));
            continue;
        }
        // Edit from the end so earlier spans stay valid.
        let mut ops: Vec<(usize, usize, Option<String>)> = Vec::new();
        for (i, r) in matches.iter().enumerate() {
            if i == 0 {
                let repl = if r.in_block {
                    body.clone()
                } else {
                    format!("replace {body}")
                };
                ops.push((r.span.0, r.span.1, Some(repl)));
            } else {
                // delete the whole physical line, including its newline
                let line_start = text[..r.span.0].rfind('\n').map(|p| p + 1).unwrap_or(0);
                let line_end = text[r.span.1..]
                    .find('\n')
                    .map(|p| r.span.1 + p + 1)
                    .unwrap_or(text.len());
                ops.push((line_start, line_end, None));
            }
        }
        ops.sort_by_key(|op| std::cmp::Reverse(op.0));
        for (s, en, repl) in ops {
            text.replace_range(s..en, repl.as_deref().unwrap_or(""));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"// leading comment
module example.com/app

go 1.19

require (
	github.com/Azure/go-autorest v14.2.0+incompatible
	golang.org/x/mod v0.17.0 // indirect
	"example.com/quoted" `v1.0.0` // indirect; reason
	rsc.io/quote v1.5.2 // not indirect
)

require example.com/single v0.1.0

exclude example.com/bad v1.0.0

replace example.com/single => example.com/fork v0.2.0
replace (
	example.com/lib v1.0.0 => ../lib
	example.com/other => ./other // local
)

retract v1.0.0
retract (
	[v1.1.0, v1.2.0]
)
godebug default=go1.21
tool example.com/tool
weird future directive
"#;

    #[test]
    fn parses_everything() {
        let m = parse_go_mod("go.mod", SAMPLE).unwrap();
        assert_eq!(m.module, "example.com/app");
        assert_eq!(m.go.as_deref(), Some("1.19"));
        assert_eq!(m.go_version(), (1, 19));
        assert_eq!(m.require.len(), 5);
        assert!(!m.require[0].indirect);
        assert!(m.require[1].indirect);
        assert_eq!(m.require[2].path, "example.com/quoted");
        assert_eq!(m.require[2].version, "v1.0.0");
        assert!(m.require[2].indirect);
        assert!(!m.require[3].indirect);
        assert_eq!(m.exclude[0].path, "example.com/bad");
        assert_eq!(m.replace.len(), 3);
        assert_eq!(
            m.replace[0].new,
            ReplaceTarget::Module {
                path: "example.com/fork".into(),
                version: "v0.2.0".into()
            }
        );
        assert_eq!(m.replace[1].old_version.as_deref(), Some("v1.0.0"));
        assert_eq!(
            m.replace[1].new,
            ReplaceTarget::Local {
                path: "../lib".into()
            }
        );
        assert_eq!(
            m.replace[2].new,
            ReplaceTarget::Local {
                path: "./other".into()
            }
        );
        assert_eq!(
            m.replacement_for("example.com/lib", "v1.0.0")
                .map(|r| r.line),
            Some(19)
        );
        assert!(m.replacement_for("example.com/lib", "v2.0.0").is_none());
        assert!(m.replacement_for("example.com/other", "v9.0.0").is_some());
    }

    #[test]
    fn odd_but_valid() {
        let m = parse_go_mod(
            "go.mod",
            "// Deprecated: use v2\r\nmodule \"example.com/q\\u\" // Deprecated: x\r\n\r\nignore ./node_modules\r\nrequire (\r\n)\r\nrequire ()\r\nexclude (\r\n\texample.com/e v1.0.0\r\n)\r\n",
        );
        assert!(m.is_err(), "unknown escape \\u must be rejected");
        let m = parse_go_mod(
            "go.mod",
            "module \"example.com/q\" // Deprecated: x\r\n\r\nignore ./node_modules\r\nrequire (\r\n)\r\nrequire ()\r\nexclude (\r\n\texample.com/e v1.0.0\r\n)\r\n",
        )
        .unwrap();
        assert_eq!(m.module, "example.com/q");
        assert!(m.require.is_empty());
        assert_eq!(m.exclude.len(), 1);
        let m = parse_go_mod("go.mod", "module x\nrequire a.com/b v1.0.0 //indirect\n").unwrap();
        assert!(m.require[0].indirect);
        let m = parse_go_mod("go.mod", "module x\nrequire a.com/b v1.0.0 // indirectly\n").unwrap();
        assert!(!m.require[0].indirect);
    }

    #[test]
    fn toolchain_and_defaults() {
        let m = parse_go_mod("go.mod", "module x\ngo 1.21.0\ntoolchain go1.22.3\n").unwrap();
        assert_eq!(m.toolchain.as_deref(), Some("go1.22.3"));
        assert_eq!(m.go_version(), (1, 21));
        let m = parse_go_mod("go.mod", "module x\r\n").unwrap();
        assert_eq!(m.go_version(), (1, 16));
        assert!(parse_go_mod("go.mod", "module x\ngo 1.21rc1\n").is_ok());
    }

    #[test]
    fn malformed() {
        let cases = [
            "go 1.19\n",                                  // no module
            "module x\nmodule y\n",                       // repeated
            "module x\nrequire (\n a.com/b v1.0.0\n",     // unterminated block
            "module x\nrequire a.com/b\n",                // missing version
            "module x\nrequire a.com/b 1.0.0\n",          // bad version
            "module x\nrequire ../b v1.0.0\n",            // bad path
            "module \"x\n",                               // unterminated string
            "module x\n/* c */\n",                        // block comment
            "module x\nreplace a.com/b => c.com/d\n",     // no version, not dir
            "module x\nreplace a.com/b => ./d v1.0.0\n",  // dir with version
            "module x\nreplace a.com/b c.com/d v1.0.0\n", // no arrow
            "module x\ngo one\n",                         // bad go version
            "module x\nrequire ( a.com/b v1.0.0\n)\n",    // ( not at eol
            "module x\n)\n",
            "module x\nrequire a.com/b v1.0.0 )\n",
            "module ex\u{e4}mple.com/x\n",
        ];
        for c in cases {
            assert!(parse_go_mod("go.mod", c).is_err(), "{c:?} should fail");
        }
        let e = parse_go_mod("sub/go.mod", "module x\nrequire a.com/b\n").unwrap_err();
        assert!(e.to_string().starts_with("sub/go.mod:2:"), "{e}");
        assert_eq!(e.kind().error_type(), "InvalidFileFormat");
    }

    #[test]
    fn absolute_replace_is_unsupported() {
        let e = parse_go_mod("go.mod", "module x\nreplace a.com/b => /abs/b\n").unwrap_err();
        assert_eq!(e.kind().error_type(), "UnsupportedFeature");
        assert!(e.to_string().contains("a.com/b"));
        let e = parse_go_mod("go.mod", "module x\nreplace a.com/b => C:\\b\n").unwrap_err();
        assert_eq!(e.kind().error_type(), "UnsupportedFeature");
    }

    #[test]
    fn rewrite_appends_when_absent() {
        let text = "module x\n\nrequire a.com/b v1.0.0 // keep\n";
        let out = apply_replace_edits(
            "go.mod",
            text,
            &[ReplaceEdit {
                name: "a.com/b".into(),
                new_name: "a.com/b".into(),
                version: "v1.1.0".into(),
            }],
        )
        .unwrap();
        assert!(out.starts_with(text));
        assert_eq!(out, format!("{text}\nreplace a.com/b => a.com/b v1.1.0\n"));
        let m = parse_go_mod("go.mod", &out).unwrap();
        assert_eq!(m.replace.len(), 1);
        // no trailing newline
        let out = apply_replace_edits(
            "go.mod",
            "module x",
            &[ReplaceEdit {
                name: "a.com/b".into(),
                new_name: "c.com/d".into(),
                version: "v1.1.0".into(),
            }],
        )
        .unwrap();
        assert_eq!(out, "module x\n\nreplace a.com/b => c.com/d v1.1.0\n");
    }

    #[test]
    fn rewrite_in_place_and_dedupe() {
        let out = apply_replace_edits(
            "go.mod",
            SAMPLE,
            &[
                ReplaceEdit {
                    name: "example.com/single".into(),
                    new_name: "example.com/fork2".into(),
                    version: "v0.3.0".into(),
                },
                ReplaceEdit {
                    name: "example.com/lib".into(),
                    new_name: "example.com/lib".into(),
                    version: "v1.5.0".into(),
                },
            ],
        )
        .unwrap();
        let expected = SAMPLE
            .replace(
                "replace example.com/single => example.com/fork v0.2.0",
                "replace example.com/single => example.com/fork2 v0.3.0",
            )
            .replace(
                "\texample.com/lib v1.0.0 => ../lib\n",
                "\texample.com/lib => example.com/lib v1.5.0\n",
            );
        assert_eq!(out, expected);
        let two = "module x\nreplace a.com/b v1.0.0 => ./b\nreplace a.com/b v2.0.0 => ./b2 // c\nrequire a.com/b v1.0.0\n";
        let out = apply_replace_edits(
            "go.mod",
            two,
            &[ReplaceEdit {
                name: "a.com/b".into(),
                new_name: "a.com/b".into(),
                version: "v1.2.0".into(),
            }],
        )
        .unwrap();
        assert_eq!(
            out,
            "module x\nreplace a.com/b => a.com/b v1.2.0\nrequire a.com/b v1.0.0\n"
        );
    }

    #[test]
    fn rewrite_rejects_bad_names() {
        let e = apply_replace_edits(
            "go.mod",
            "module x\n",
            &[ReplaceEdit {
                name: "a.com/b".into(),
                new_name: "a.com/b\nrequire evil.com/x".into(),
                version: "v1.0.0".into(),
            }],
        )
        .unwrap_err();
        assert_eq!(e.kind().error_type(), "InvalidRequestData");
    }
}

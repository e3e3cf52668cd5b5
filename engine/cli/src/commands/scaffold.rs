//! `weft plugin new`: writes an adapter project (Rust, JavaScript or Python)
//! that builds into a component and passes its own test as written.
//!
//! The templates live in `engine/cli/templates/plugin/<lang>/` and are built
//! into the binary, with the engine's own WIT and the JavaScript toolchain's
//! lock, so a scaffold always speaks the exact contract of the weft that made it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::{exit, render};

/// The contract, byte for byte as the engine was built with it.
const WIT: &str = include_str!("../../../../wit/plugin.wit");

/// Exact versions of jco and componentize-js, shared with `plugins/js` (whose
/// package.json the JavaScript template's must pin alike).
const JS_LOCK: &str = include_str!("../../../../plugins/js/package-lock.json");
/// The root package's name in [`JS_LOCK`], replaced by the adapter's.
const JS_LOCK_NAME: &str = r#""name": "weft-js-adapters""#;

const MAX_NAME: usize = 40;

/// The call every template answers `done` to.
const TRY: &str = r#"greet --input '{"name":"ada"}'"#;

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!("../../templates/plugin/", $path))
    };
}

/// One file of a scaffold: where it goes (placeholders allowed) and its text.
struct File {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

const fn file(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        executable: false,
    }
}

const fn script(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        executable: true,
    }
}

const RUST: &[File] = &[
    file("Cargo.toml", template!("rust/Cargo.toml")),
    file("src/lib.rs", template!("rust/src/lib.rs")),
    file("README.md", template!("rust/README.md")),
    file(".gitignore", template!("rust/gitignore")),
    file("wit/plugin.wit", WIT),
];

const JS: &[File] = &[
    file("package.json", template!("js/package.json")),
    file("{{name}}.js", template!("js/adapter.js")),
    file("build.mjs", template!("js/build.mjs")),
    file("preopens.mjs", template!("js/preopens.mjs")),
    file("test.mjs", template!("js/test.mjs")),
    file("README.md", template!("js/README.md")),
    file(".gitignore", template!("js/gitignore")),
    file("wit/plugin.wit", WIT),
];

const PYTHON: &[File] = &[
    file("{{module}}.py", template!("python/adapter.py")),
    script("build.sh", template!("python/build.sh")),
    script("test.sh", template!("python/test.sh")),
    file("README.md", template!("python/README.md")),
    file(".gitignore", template!("python/gitignore")),
    file("wit/plugin.wit", WIT),
];

/// `weft plugin new <name> [--lang rust|js|python] [--dir <path>]`.
pub fn new(name: &str, lang: &str, dir: Option<&Path>) -> anyhow::Result<u8> {
    check_name(name)?;
    let names = Names::of(name);
    let files = match lang {
        "rust" => RUST,
        "js" => JS,
        "python" => PYTHON,
        other => bail!("there is no '{other}' template: use --lang rust, js or python"),
    };
    let target = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let occupied = occupied(&target)?;

    let mut written: Vec<(String, String, bool)> = files
        .iter()
        .map(|f| (names.fill(f.path), names.fill(f.text), f.executable))
        .collect();
    if lang == "js" {
        written.push(("package-lock.json".into(), js_lock(name), false));
    }
    let staging = Staging::beside(&target)?;
    for (path, text, executable) in &written {
        let at = staging.dir.join(path);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&at, text).with_context(|| format!("cannot write {}", at.display()))?;
        if *executable {
            make_executable(&at)?;
        }
    }
    staging.move_to(&target, occupied)?;

    let mut paths: Vec<&str> = written.iter().map(|(p, ..)| p.as_str()).collect();
    paths.sort_unstable();
    let shown = target.display().to_string();
    let language = match lang {
        "rust" => "Rust",
        "js" => "JavaScript",
        _ => "Python",
    };
    render::say(format_args!(
        "created {name}, a {language} adapter, in {shown}:"
    ));
    render::say(format_args!("  {}", paths.join("  ")));
    let cd = match shown.as_str() {
        "." | "./" => String::new(),
        dir => format!("cd {} && ", shell_word(dir)),
    };
    let next: [String; 3] = match lang {
        "rust" => [
            format!("{cd}cargo build --release --target wasm32-wasip2"),
            "cargo test".into(),
            format!(
                "weft plugin call target/wasm32-wasip2/release/{}.wasm {TRY}",
                names.krate
            ),
        ],
        "js" => [
            format!("{cd}npm ci && npm run build"),
            "npm test".into(),
            format!("weft plugin call {name}.wasm {TRY}"),
        ],
        _ => [
            format!("{cd}./build.sh"),
            "./test.sh".into(),
            format!("weft plugin call {name}.wasm {TRY}"),
        ],
    };
    render::say("next:");
    for line in next {
        render::say(format_args!("  {line}"));
    }
    Ok(exit::OK)
}

/// Refuses a name that is not `[a-z][a-z0-9-]*` of at most 40 characters:
/// it names the crate, the package, the module and the component file.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let length = name.chars().count();
    if well_formed && length <= MAX_NAME {
        return Ok(());
    }
    let why = if length > MAX_NAME {
        format!("it is {length} characters long, the most is {MAX_NAME}")
    } else {
        "use lowercase letters, digits and '-', starting with a letter".to_owned()
    };
    match suggestion(name) {
        Some(s) if s != name => bail!("'{name}' cannot name an adapter: {why} (say, '{s}')"),
        _ => bail!("'{name}' cannot name an adapter: {why}"),
    }
}

/// A well-formed name close to `name`, if there is one.
fn suggestion(name: &str) -> Option<String> {
    let mut s = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    let s: String = s.chars().take(MAX_NAME).collect();
    let s = s.trim_end_matches('-');
    (!s.is_empty()).then(|| s.to_owned())
}

/// The adapter's name as each template spells it.
struct Names {
    /// `{{name}}`: the manifest's, the npm package's, the component file's.
    name: String,
    /// `{{crate}}`: the Rust library, hence `target/.../<crate>.wasm`;
    /// `weft_` first so `weft plugin add` registers it as `name`.
    krate: String,
    /// `{{module}}`: the Python module.
    module: String,
}

impl Names {
    fn of(name: &str) -> Names {
        let snake = name.replace('-', "_");
        // Python finds its own module of that name before the adapter's.
        let module = if PYTHON_TAKEN.split_whitespace().any(|m| m == snake) {
            format!("{snake}_adapter")
        } else {
            snake.clone()
        };
        Names {
            name: name.to_owned(),
            krate: format!("weft_{snake}"),
            module,
        }
    }

    fn fill(&self, text: &str) -> String {
        text.replace("{{name}}", &self.name)
            .replace("{{crate}}", &self.krate)
            .replace("{{module}}", &self.module)
    }
}

/// The JavaScript toolchain's lock, for a package of this name.
fn js_lock(name: &str) -> String {
    JS_LOCK.replace(JS_LOCK_NAME, &format!(r#""name": "{name}""#))
}

/// Whether `target` exists (as an empty directory); refuses anything else
/// there, before a file is written.
fn occupied(target: &Path) -> anyhow::Result<bool> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot look at {}", target.display())),
        Ok(meta) if !meta.is_dir() => bail!(
            "{} already exists and is not a directory; pick another --dir",
            target.display()
        ),
        Ok(_) => {
            let mut entries = std::fs::read_dir(target)
                .with_context(|| format!("cannot read {}", target.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty; pick another --dir, or remove it",
                    target.display()
                );
            }
            Ok(true)
        }
    }
}

/// A hidden directory beside the target that the files are written to and
/// then moved from: a failure on the way leaves nothing half-written. It is
/// removed on drop, whatever happened.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    fn beside(target: &Path) -> anyhow::Result<Staging> {
        let absolute = std::path::absolute(target)
            .with_context(|| format!("cannot resolve {}", target.display()))?;
        let (Some(parent), Some(leaf)) = (absolute.parent(), absolute.file_name()) else {
            bail!("cannot create a project at {}", target.display());
        };
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let leaf = leaf.to_string_lossy();
        for n in 0..100 {
            let dir = parent.join(format!(".{leaf}.weft-new-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Staging { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", dir.display()));
                }
            }
        }
        bail!("cannot create a scratch directory in {}", parent.display())
    }

    /// Moves the files into `target`: the directory itself when there is
    /// none yet, else its entries one by one into the empty directory there
    /// (which may be someone's working directory, so it is kept).
    fn move_to(self, target: &Path, occupied: bool) -> anyhow::Result<()> {
        if !occupied {
            return std::fs::rename(&self.dir, target)
                .with_context(|| format!("cannot create {}", target.display()));
        }
        let entries: Vec<_> = std::fs::read_dir(&self.dir)
            .and_then(|d| d.collect::<Result<_, _>>())
            .with_context(|| format!("cannot read {}", self.dir.display()))?;
        let mut moved: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let to = target.join(entry.file_name());
            if let Err(e) = std::fs::rename(entry.path(), &to) {
                // Take back what was moved: the directory stays as it was.
                for m in &moved {
                    let _ = std::fs::remove_dir_all(m).or_else(|_| std::fs::remove_file(m));
                }
                return Err(e).with_context(|| format!("cannot create {}", to.display()));
            }
            moved.push(to);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// `path` as one word for a POSIX shell.
fn shell_word(path: &str) -> String {
    let plain = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c));
    if plain {
        path.to_owned()
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

/// Module names a Python adapter's module must not take: the standard
/// library's (Python 3.11's `sys.stdlib_module_names`, and later additions),
/// componentize-py's own, and keywords.
const PYTHON_TAKEN: &str = "\
    abc aifc annotationlib antigravity argparse array ast asynchat asyncio asyncore atexit \
    audioop base64 bdb binascii bisect builtins bz2 calendar cgi cgitb chunk cmath cmd code \
    codecs codeop collections colorsys compileall compression concurrent configparser contextlib \
    contextvars copy copyreg crypt csv ctypes curses dataclasses datetime dbm decimal difflib \
    dis distutils doctest email encodings ensurepip enum errno faulthandler fcntl filecmp \
    fileinput fnmatch fractions ftplib functools gc genericpath getopt getpass gettext glob \
    graphlib grp gzip hashlib heapq hmac html http idlelib imaplib imghdr imp importlib inspect \
    io ipaddress itertools json keyword lib2to3 linecache locale logging lzma mailbox mailcap \
    marshal math mimetypes mmap modulefinder msilib msvcrt multiprocessing netrc nis nntplib nt \
    ntpath nturl2path numbers opcode operator optparse os ossaudiodev pathlib pdb pickle \
    pickletools pipes pkgutil platform plistlib poplib posix posixpath pprint profile pstats pty \
    pwd py_compile pyclbr pydoc pydoc_data pyexpat queue quopri random re readline reprlib \
    resource rlcompleter runpy sched secrets select selectors shelve shlex shutil signal site \
    smtpd smtplib sndhdr socket socketserver spwd sqlite3 sre_compile sre_constants sre_parse \
    ssl stat statistics string stringprep struct subprocess sunau symtable sys sysconfig syslog \
    tabnanny tarfile telnetlib tempfile termios test textwrap this threading time timeit tkinter \
    token tokenize tomllib trace traceback tracemalloc tty turtle turtledemo types typing \
    unicodedata unittest urllib uu uuid venv warnings wave weakref webbrowser winreg winsound \
    wsgiref xdrlib xml xmlrpc zipapp zipfile zipimport zlib zoneinfo componentize_py \
    componentize_py_async_support componentize_py_runtime componentize_py_types poll_loop \
    wit_world and as assert async await break class continue def del elif else except finally \
    for from global if import in is lambda nonlocal not or pass raise return try while with \
    yield";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_name_accepts_kebab_case_up_to_40_characters() {
        for ok in ["a", "greeter", "my-adapter-2", &"a".repeat(40)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn check_name_refuses_other_names_with_a_suggestion() {
        let err = |n: &str| check_name(n).map_err(|e| e.to_string()).err();
        assert_eq!(
            err("My_Adapter").as_deref(),
            Some(
                "'My_Adapter' cannot name an adapter: use lowercase letters, digits and '-', \
                 starting with a letter (say, 'my-adapter')"
            )
        );
        for bad in ["", "9lives", "-x", "a b", "ünï", "a.b", &"a".repeat(41)] {
            assert!(err(bad).is_some(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names_of_a_python_standard_module_take_a_suffix() {
        assert_eq!(Names::of("http").module, "http_adapter");
        assert_eq!(Names::of("my-thing").module, "my_thing");
        assert_eq!(Names::of("my-thing").krate, "weft_my_thing");
    }

    #[test]
    fn shell_word_quotes_only_what_needs_it() {
        assert_eq!(shell_word("./a/b-c"), "./a/b-c");
        assert_eq!(shell_word("my dir/it's"), r"'my dir/it'\''s'");
    }
}

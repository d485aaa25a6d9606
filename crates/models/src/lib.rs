//! The llama2.c tiny story models by name, where each file is published, and fetching them into
//! the Hugging Face cache.
//!
//! Karpathy publishes the TinyStories checkpoints on the Hugging Face hub in
//! [`karpathy/tinyllamas`](https://huggingface.co/karpathy/tinyllamas) (MIT licence):
//! `stories15M.bin`, `stories42M.bin`, `stories110M.bin` at the top and `stories260K/` with its
//! own 512-piece tokenizer `tok512.bin`. The 32000-piece Llama 2 tokenizer the three larger
//! models use, `tokenizer.bin`, is not in that repository: it is published in the llama2.c
//! GitHub repository (`karpathy/llama2.c`, file `tokenizer.bin` at its root), and taken from a
//! fixed commit with a known SHA-256.
//!
//! Files land in the standard cache layout of `huggingface_hub` (`$HF_HUB_CACHE`, or
//! `$HF_HOME/hub`, or `~/.cache/huggingface/hub`: `models--karpathy--tinyllamas/{blobs,
//! snapshots,refs}`), so other hub tools see and reuse them; `$HF_ENDPOINT` replaces
//! `https://huggingface.co` (a mirror, or a test server). The GitHub file goes beside the hub
//! cache, in `<HF_HOME>/esp-llm/`. Every download streams into a temporary file in the cache
//! and is renamed into place only after its length (and SHA-256, where the hub's ETag gives
//! one or the catalogue pins one) checked out: an interrupted or failed download leaves no
//! file that a later run would take for the model.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The hub repository of the TinyStories checkpoints.
pub const HUB_REPO: &str = "karpathy/tinyllamas";
/// The hub revision downloaded (a branch: the repository has not changed since 2023).
pub const HUB_REVISION: &str = "main";
/// The llama2.c commit whose `tokenizer.bin` is used (the one the golden outputs came from).
pub const LLAMA2C_COMMIT: &str = "350e04fe35433e6d2941dce5a1f53308f87058eb";

/// Where one file is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A path inside [`HUB_REPO`].
    Hub(&'static str),
    /// A file of the llama2.c GitHub repository at [`LLAMA2C_COMMIT`]; a mirror set with
    /// `HF_ENDPOINT` may also serve it at the top of [`HUB_REPO`], which is tried first.
    Llama2c(&'static str),
}

/// A file of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File {
    /// The file name the tools look for (`stories15M.bin`, `tok512.bin`).
    pub name: &'static str,
    pub source: Source,
    /// SHA-256 the file must have, where the catalogue pins one (files outside the hub, whose
    /// server gives no checksum).
    pub sha256: Option<&'static str>,
}

/// A model of the catalogue: its checkpoint and the tokenizer it was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// The name on the command line (`stories15M`).
    pub name: &'static str,
    pub checkpoint: File,
    pub tokenizer: File,
}

pub const TOK512: File =
    File { name: "tok512.bin", source: Source::Hub("stories260K/tok512.bin"), sha256: None };
pub const TOKENIZER_32000: File = File {
    name: "tokenizer.bin",
    source: Source::Llama2c("tokenizer.bin"),
    // Measured on the copy taken from LLAMA2C_COMMIT (433869 bytes).
    sha256: Some("50a52ef822ee9e83de5ce9d0be0a025a773d019437f58b5ff9dcafb063ece361"),
};

/// The models by name, smallest first. stories260K is the default of every command.
pub const MODELS: [Model; 4] = [
    Model {
        name: "stories260K",
        checkpoint: File {
            name: "stories260K.bin",
            source: Source::Hub("stories260K/stories260K.bin"),
            sha256: None,
        },
        tokenizer: TOK512,
    },
    Model {
        name: "stories15M",
        checkpoint: File {
            name: "stories15M.bin",
            source: Source::Hub("stories15M.bin"),
            sha256: None,
        },
        tokenizer: TOKENIZER_32000,
    },
    Model {
        name: "stories42M",
        checkpoint: File {
            name: "stories42M.bin",
            source: Source::Hub("stories42M.bin"),
            sha256: None,
        },
        tokenizer: TOKENIZER_32000,
    },
    Model {
        name: "stories110M",
        checkpoint: File {
            name: "stories110M.bin",
            source: Source::Hub("stories110M.bin"),
            sha256: None,
        },
        tokenizer: TOKENIZER_32000,
    },
];

/// The model called `name` (`stories15M`, or its file name `stories15M.bin`).
pub fn model(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name || m.checkpoint.name == name)
}

/// The catalogue file called `name` (a checkpoint or a tokenizer).
pub fn file(name: &str) -> Option<File> {
    MODELS.iter().flat_map(|m| [m.checkpoint, m.tokenizer]).find(|f| f.name == name)
}

/// The catalogue's names, for messages.
pub fn names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// What went wrong getting a file; `Display` is one line that says what to download by hand
/// and where to put it.
#[derive(Debug)]
pub struct Error {
    pub file: &'static str,
    /// The URLs tried, each with what happened.
    pub tried: Vec<(String, String)>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = "by hand and put it in ./models/ (or in the folder $ESP_LLM_MODELS names)";
        match self.tried.as_slice() {
            [(url, why)] => {
                write!(f, "cannot download {} from {url}: {why}; download it {hint}", self.file)
            }
            tried => {
                let all: Vec<String> = tried.iter().map(|(u, why)| format!("{u}: {why}")).collect();
                let url = tried.last().map(|t| t.0.as_str()).unwrap_or("it");
                write!(
                    f,
                    "cannot download {} ({}); download {url} {hint}",
                    self.file,
                    all.join("; ")
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// `$HF_ENDPOINT`, or the hub.
pub fn endpoint() -> String {
    match std::env::var("HF_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => e.trim().trim_end_matches('/').to_string(),
        _ => "https://huggingface.co".to_string(),
    }
}

/// `$HF_HOME`, or `$XDG_CACHE_HOME/huggingface`, or `~/.cache/huggingface` (huggingface_hub's
/// order). `None` when there is no home directory to put it in.
pub fn hf_home() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("HF_HOME")
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface")))
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache").join("huggingface")))
}

/// The hub cache: `$HF_HUB_CACHE`, or `<hf_home>/hub`.
pub fn hub_cache() -> Option<PathBuf> {
    std::env::var_os("HF_HUB_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| hf_home().map(|h| h.join("hub")))
}

/// Where files from outside the hub are kept: `<hf_home>/esp-llm/llama2.c-<commit>`.
fn llama2c_cache() -> Option<PathBuf> {
    hf_home().map(|h| h.join("esp-llm").join(format!("llama2.c-{}", &LLAMA2C_COMMIT[..12])))
}

fn hub_repo_dir(cache: &Path) -> PathBuf {
    cache.join(hf_hub::Repo::model(HUB_REPO.to_string()).folder_name())
}

/// The file from the cache, without touching the network.
pub fn cached(f: &File) -> Option<PathBuf> {
    let hub = hub_cache()?;
    let repo = hf_hub::Cache::new(hub.clone()).repo(hf_hub::Repo::with_revision(
        HUB_REPO.into(),
        hf_hub::RepoType::Model,
        HUB_REVISION.into(),
    ));
    match f.source {
        Source::Hub(path) => repo.get(path).filter(|p| p.is_file()),
        Source::Llama2c(path) => {
            let p = llama2c_cache()?.join(path);
            if p.is_file() {
                return Some(p);
            }
            // Served by a mirror at the top of the hub repository and cached there.
            repo.get(path).filter(|p| p.is_file() && sha_ok(p, f.sha256))
        }
    }
}

fn sha_ok(p: &Path, want: Option<&str>) -> bool {
    match want {
        None => true,
        Some(w) => std::fs::read(p).map(|b| hex(&Sha256::digest(&b)) == w).unwrap_or(false),
    }
}

/// The file from the cache, or downloaded into it (with a progress bar on a terminal when
/// `progress`). Returns its path in the cache.
pub fn fetch(f: &File, progress: bool) -> Result<PathBuf, Error> {
    if let Some(p) = cached(f) {
        return Ok(p);
    }
    let mut err = Error { file: f.name, tried: Vec::new() };
    let Some(hub) = hub_cache() else {
        err.tried.push(("the cache".into(), "no home directory; set HF_HOME".into()));
        return Err(err);
    };
    match f.source {
        Source::Hub(path) => match fetch_hub(&hub, path, f.sha256, progress) {
            Ok(p) => return Ok(p),
            Err(e) => err.tried.push(e),
        },
        Source::Llama2c(path) => {
            if std::env::var_os("HF_ENDPOINT").is_some() {
                match fetch_hub(&hub, path, f.sha256, progress) {
                    Ok(p) => return Ok(p),
                    Err(e) => err.tried.push(e),
                }
            }
            let url = std::env::var("ESP_LLM_TOKENIZER_URL").unwrap_or_else(|_| {
                format!(
                    "https://raw.githubusercontent.com/karpathy/llama2.c/{LLAMA2C_COMMIT}/{path}"
                )
            });
            let dir = llama2c_cache().unwrap_or_else(|| hub.join("esp-llm"));
            match fetch_url(&url, &dir, path, f.sha256, progress) {
                Ok(p) => return Ok(p),
                Err(e) => err.tried.push((url, e)),
            }
        }
    }
    Err(err)
}

fn agent(follow_redirects: bool) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .redirects(if follow_redirects { 8 } else { 0 })
        .try_proxy_from_env(true)
        .user_agent(concat!("esp-llm/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn hf_token() -> Option<String> {
    if let Ok(t) = std::env::var("HF_TOKEN") {
        return Some(t.trim().to_string()).filter(|t| !t.is_empty());
    }
    let t = std::fs::read_to_string(hf_home()?.join("token")).ok()?;
    Some(t.trim().to_string()).filter(|t| !t.is_empty())
}

/// GET with the hub's redirect handling: the first answer carries the commit and the ETag
/// (for large files the SHA-256 of their contents), the redirect target the bytes.
fn get(url: &str, auth: bool) -> Result<(ureq::Response, Meta), String> {
    let mut req = agent(false).get(url);
    if auth {
        if let Some(t) = hf_token() {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
    }
    let first = req.call().map_err(describe)?;
    let header = |r: &ureq::Response, k: &str| r.header(k).map(|v| v.trim().to_string());
    let mut meta = Meta {
        commit: header(&first, "x-repo-commit"),
        etag: header(&first, "x-linked-etag").or_else(|| header(&first, "etag")),
        size: header(&first, "x-linked-size").and_then(|s| s.parse().ok()),
    };
    if !(300..400).contains(&first.status()) {
        meta.size =
            meta.size.or_else(|| header(&first, "content-length").and_then(|s| s.parse().ok()));
        return Ok((first, meta));
    }
    let location = header(&first, "location").ok_or("redirect without a Location header")?;
    // The hub answers relative redirects for renamed repositories, absolute ones to its CDN.
    let next = url::Url::parse(first.get_url())
        .and_then(|u| u.join(&location))
        .map_err(|e| format!("bad redirect {location}: {e}"))?;
    let resp = agent(true).request_url("GET", &next).call().map_err(describe)?;
    meta.size = meta.size.or_else(|| header(&resp, "content-length").and_then(|s| s.parse().ok()));
    Ok((resp, meta))
}

struct Meta {
    commit: Option<String>,
    etag: Option<String>,
    size: Option<u64>,
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(404, _) => "HTTP 404, not found".into(),
        ureq::Error::Status(401 | 403, _) => {
            "HTTP 401/403, not allowed (a private mirror? set HF_TOKEN)".into()
        }
        ureq::Error::Status(code, r) => format!("HTTP {code} {}", r.status_text()),
        ureq::Error::Transport(t) => {
            let offline =
                matches!(t.kind(), ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed);
            format!(
                "{}{}{}",
                t.kind(),
                t.message().map(|m| format!(": {m}")).unwrap_or_default(),
                if offline { " (offline?)" } else { "" }
            )
        }
    }
}

/// Downloads `path` of the hub repository into the hub cache layout.
fn fetch_hub(
    hub: &Path,
    path: &'static str,
    sha256: Option<&str>,
    progress: bool,
) -> Result<PathBuf, (String, String)> {
    let url = format!("{}/{HUB_REPO}/resolve/{HUB_REVISION}/{path}", endpoint());
    let fail = |why: String| (url.clone(), why);
    let (resp, meta) = get(&url, true).map_err(fail)?;
    let repo_dir = hub_repo_dir(hub);
    let blobs = repo_dir.join("blobs");
    std::fs::create_dir_all(&blobs)
        .map_err(|e| fail(format!("cannot create {}: {e}", blobs.display())))?;
    // The hub's ETag of a large file is the SHA-256 of its contents: check it.
    let etag =
        meta.etag.as_deref().map(|e| e.trim_start_matches("W/").trim_matches('"').to_string());
    let etag_sha =
        etag.as_deref().filter(|e| e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit()));
    let want = sha256.or(etag_sha);
    let (tmp, got) = stream(resp, &blobs, path, meta.size, want, progress).map_err(fail)?;
    let blob_name =
        etag.filter(|e| !e.is_empty() && !e.contains('/')).unwrap_or_else(|| got.clone());
    let blob = blobs.join(&blob_name);
    tmp.persist(&blob).map_err(|e| fail(format!("cannot write {}: {e}", blob.display())))?;
    // snapshots/<commit>/<path> -> ../../blobs/<etag>, then refs/<revision> = <commit>. A mirror
    // that sends no commit gets a snapshot named after the revision.
    let commit = meta
        .commit
        .filter(|c| !c.is_empty() && !c.contains('/'))
        .unwrap_or_else(|| HUB_REVISION.to_string());
    let link = repo_dir.join("snapshots").join(&commit).join(path);
    let parent = link.parent().unwrap_or(&repo_dir);
    std::fs::create_dir_all(parent)
        .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    place(&blob, &link).map_err(|e| fail(format!("cannot write {}: {e}", link.display())))?;
    let refs = repo_dir.join("refs");
    std::fs::create_dir_all(&refs)
        .map_err(|e| fail(format!("cannot create {}: {e}", refs.display())))?;
    write_atomic(&refs.join(HUB_REVISION), commit.as_bytes())
        .map_err(|e| fail(format!("cannot write refs: {e}")))?;
    Ok(link)
}

/// Downloads a plain URL into `dir/name`.
fn fetch_url(
    url: &str,
    dir: &Path,
    name: &str,
    sha256: Option<&str>,
    progress: bool,
) -> Result<PathBuf, String> {
    let (resp, meta) = get(url, false)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (tmp, _) = stream(resp, dir, name, meta.size, sha256, progress)?;
    let dest = dir.join(name);
    tmp.persist(&dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    Ok(dest)
}

/// Streams a body into a temporary file in `dir` (deleted unless persisted), checking its
/// length and SHA-256. Returns the file and the SHA-256 in hex.
fn stream(
    resp: ureq::Response,
    dir: &Path,
    name: &str,
    size: Option<u64>,
    sha256: Option<&str>,
    progress: bool,
) -> Result<(tempfile::NamedTempFile, String), String> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".esp-llm-download-")
        .suffix(".incomplete")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    let pb = if progress {
        let pb =
            indicatif::ProgressBar::with_draw_target(size, indicatif::ProgressDrawTarget::stderr());
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_message(format!("downloading {name}"));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut reader = resp.into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("connection broken after {total} bytes: {e}")),
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", tmp.path().display()))?;
        total += n as u64;
        pb.set_position(total);
    }
    pb.finish_and_clear();
    if let Some(want) = size {
        if total != want {
            return Err(format!("got {total} bytes of {want}: the download was cut short"));
        }
    }
    if total == 0 {
        return Err("the server sent an empty file".into());
    }
    let got = hex(&hasher.finalize());
    if let Some(want) = sha256 {
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("SHA-256 {got} is not the published {want}"));
        }
    }
    tmp.as_file().sync_all().map_err(|e| format!("cannot write {}: {e}", tmp.path().display()))?;
    Ok((tmp, got))
}

/// Puts a snapshot entry for `blob` at `link`: a relative symlink (as huggingface_hub does),
/// or a copy where symlinks are not allowed; atomically either way.
fn place(blob: &Path, link: &Path) -> std::io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    #[cfg(unix)]
    {
        // From snapshots/<commit>/<path...> back up to the repository folder.
        let repo_dir = blob.parent().and_then(Path::parent).unwrap_or(Path::new("."));
        let up = link.strip_prefix(repo_dir).map(|r| r.components().count() - 1).unwrap_or(0);
        let mut target = PathBuf::new();
        for _ in 0..up {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().unwrap_or_default());
        let tmp = dir.join(format!(".esp-llm-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(&target, &tmp).is_ok() {
            return std::fs::rename(&tmp, link);
        }
    }
    let tmp = dir.join(format!(".esp-llm-copy-{}", std::process::id()));
    std::fs::copy(blob, &tmp)?;
    std::fs::rename(&tmp, link)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

//! The `rubygems` package manager end to end: a real Larder, a fixture gem server upstream
//! (gems built with the real `gem build`, the Compact Index written by the test), local git
//! repositories, and Debian's real `bundle` (fresh HOME, no inherited BUNDLE_*/GEM_*):
//! through the per-request gem server with the returned `.bundle/config`, and offline from the
//! bundle with `bundle install --local`.

use crate::support::rubygems_fixtures::*;
use crate::support::*;
use serde_json::{json, Value};
use std::path::Path;

fn write(p: &Path, content: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The files of the bundle written to `dir` (`dir/app`, `dir/deps`).
fn unpack(bytes: &[u8], dir: &Path) {
    for (path, content) in untar(bytes) {
        let p = dir.join(path.trim_end_matches('/'));
        match content {
            None => std::fs::create_dir_all(&p).unwrap(),
            Some(c) => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, c).unwrap();
            }
        }
    }
}

fn store_files_under(root: &Path, prefix: &str) -> Vec<String> {
    fn rec(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                rec(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    rec(root, &root.join(prefix), &mut out);
    out.sort();
    out
}

pub(crate) struct Upstream {
    pub(crate) server: StaticServer,
    dir: tempfile::TempDir,
    gems: Vec<BuiltGem>,
}

impl Upstream {
    pub(crate) fn gem(&self, full_name: &str) -> &BuiltGem {
        self.gems
            .iter()
            .find(|g| g.full_name() == full_name)
            .unwrap_or_else(|| panic!("no fixture gem {full_name}"))
    }
}

pub(crate) async fn upstream(work: &Path, gems: &[FixtureGem]) -> Upstream {
    let built: Vec<BuiltGem> = gems.iter().map(|g| build_gem(work, g)).collect();
    let dir = tempfile::tempdir().unwrap();
    write_server(dir.path(), &built);
    let server = StaticServer::start(dir.path()).await;
    Upstream {
        server,
        dir,
        gems: built,
    }
}

pub(crate) fn fixture_gems() -> Vec<FixtureGem> {
    vec![
        FixtureGem::new("rack", "1.0.0", &[]),
        FixtureGem::new("rack", "2.0.0", &[]),
        FixtureGem::new("middle", "0.3.1", &[("rack", "= 1.0.0")]).licenses(&[]),
        FixtureGem::new("top", "0.1.0", &[("middle", "~> 0.3")]).licenses(&["MIT", "Apache-2.0"]),
        FixtureGem::new("native", "1.0.0", &[]),
        FixtureGem::new("native", "1.0.0", &[]).platform("x86_64-linux"),
        FixtureGem::new("undeclared", "1.0.0", &[]),
    ]
}

async fn larder_for(up: &Upstream) -> Larder {
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_RUBYGEMS_URL".into(), up.server.url.clone());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    larder
}

/// Lock `dir`'s Gemfile with the real bundler against the fixture server (standing in for
/// rubygems.org through a mirror, so the lockfile names rubygems.org), for `ruby` and this
/// machine's platform.
pub(crate) fn lock(dir: &Path, home: &Path, up: &Upstream) -> String {
    let mirror = format!("{}/", up.server.url);
    let env = [("BUNDLE_MIRROR__ALL", mirror.as_str())];
    let (ok, out) = bundle(dir, home, &["lock", "--add-platform", "ruby"], &env);
    assert!(ok, "bundle lock: {out}");
    std::fs::read_to_string(dir.join("Gemfile.lock")).unwrap()
}

/// Add a CHECKSUMS section (Bundler 2.5's) for `entries` (full name, sha256) to a lockfile
/// written by Debian's Bundler 2.3, which has none and ignores it.
fn with_checksums(lock: &str, entries: &[(String, String)]) -> String {
    let mut section = String::from("CHECKSUMS\n");
    for (full, sum) in entries {
        let (name, rest) = full.split_once('-').unwrap();
        section.push_str(&format!("  {name} ({rest}) sha256={sum}\n"));
    }
    match lock.find("BUNDLED WITH") {
        Some(at) => format!("{}{section}\n{}", &lock[..at], &lock[at..]),
        None => format!("{lock}\n{section}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bundler_installs_through_the_gem_server_and_offline_from_the_bundle() {
    let work = tempfile::tempdir().unwrap();
    let t = work.path();
    let up = upstream(t, &fixture_gems()).await;
    let larder = larder_for(&up).await;

    // a git gem: a local repository on a branch
    let gitgem = GitRepo::new(t.join("gitgem"));
    let gg = FixtureGem::new("gitgem", "0.2.0", &[("rack", ">= 1.0")]);
    gitgem
        .write("gitgem.gemspec", &gemspec(&gg, &["lib/gitgem.rb"]))
        .write("lib/gitgem.rb", &lib_source(&gg));
    let git_commit = gitgem.commit("gitgem");
    let git_url = format!("file://{}", gitgem.url());

    // the repository: a literal gemspec, a path gem inside it, registry, platform and git gems
    let repo = GitRepo::new(t.join("shop"));
    let lg = FixtureGem::new("localgem", "0.5.0", &[]);
    repo.write(
        "Gemfile",
        &format!(
            "source \"https://rubygems.org\"\n\ngem \"top\"\ngem \"native\"\ngem \"gitgem\", git: \"{git_url}\", branch: \"main\"\ngem \"localgem\", path: \"gems/localgem\"\n"
        ),
    )
    .write(
        "shop.gemspec",
        "Gem::Specification.new do |s|\n  s.name = \"shop\"\n  s.version = \"1.2.0\"\n  s.summary = \"shop\"\n  s.authors = [\"t\"]\nend\n",
    )
    .write("gems/localgem/localgem.gemspec", &gemspec(&lg, &["lib/localgem.rb"]))
    .write("gems/localgem/lib/localgem.rb", &lib_source(&lg));
    let lock_text = lock(&repo.dir, &t.join("home-lock"), &up);
    assert!(
        lock_text.contains("remote: https://rubygems.org/"),
        "{lock_text}"
    );
    assert!(
        lock_text.contains(&format!("revision: {git_commit}")),
        "{lock_text}"
    );
    assert!(
        lock_text.contains("native (1.0.0-x86_64-linux)"),
        "{lock_text}"
    );
    // CHECKSUMS for some gems; the others are verified against the upstream index
    let lock_text = with_checksums(
        &lock_text,
        &[
            ("top-0.1.0".into(), up.gem("top-0.1.0").sha256.clone()),
            ("rack-1.0.0".into(), up.gem("rack-1.0.0").sha256.clone()),
            ("gitgem-0.2.0".into(), String::new()),
        ]
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .collect::<Vec<_>>(),
    );
    repo.write("Gemfile.lock", &lock_text);
    let commit = repo.commit("shop");
    up.server.clear_requests();

    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["rubygems"], "flags": ["rubygems-platforms"]}))
        .await;
    let r = larder.wait(id).await;
    assert_eq!(r["state"], "complete", "{r}\n{}", larder.logs());
    assert!(!up.server.requests().is_empty());
    // the SBOM (gem SHA-256s, how each was checked) is valid in both formats; its graph is
    // Gemfile.lock's indentation (the git gem's spec lists rack)
    let bom = crate::support::sbom::valid_sboms(&larder, id).await;
    let edges = crate::support::sbom::cyclonedx_edges(&bom);
    assert!(
        edges["gitgem@0.2.0"].contains("rack@1.0.0"),
        "{edges:?}\n{lock_text}"
    );
    // the gemspecs' licences (several as all applying, none for middle), and each registry
    // gem's distribution URL is the upstream file fetched
    let licenses = crate::support::sbom::cyclonedx_licenses(&bom);
    assert_eq!(licenses["rack@1.0.0"], "MIT");
    assert_eq!(licenses["top@0.1.0"], "MIT AND Apache-2.0");
    assert!(!licenses.contains_key("middle@0.3.1"), "{licenses:?}");
    let distributions = crate::support::sbom::cyclonedx_distributions(&bom);
    for gem in ["rack-1.0.0", "middle-0.3.1", "top-0.1.0"] {
        let (name, version) = gem.rsplit_once('-').unwrap();
        assert_eq!(
            distributions[&format!("{name}@{version}")],
            [format!("{}/gems/{gem}.gem", up.server.url)]
                .into_iter()
                .collect(),
            "{bom}"
        );
    }
    assert!(
        distributions["native@1.0.0"].contains(&format!(
            "{}/gems/native-1.0.0-x86_64-linux.gem",
            up.server.url
        )),
        "{distributions:?}"
    );
    // the git gem's reference is its repository
    assert!(
        !distributions.contains_key("gitgem@0.2.0"),
        "{distributions:?}"
    );
    assert!(
        !up.server
            .requests()
            .iter()
            .any(|p| p.contains("undeclared")),
        "{:?}",
        up.server.requests()
    );

    // the package: the literal gemspec's name and version, every locked gem
    let (status, pk) = larder.get(&format!("/api/v1/requests/{id}/packages")).await;
    assert_eq!(status, 200, "{pk}");
    let pkgs = pk["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 1, "{pk}");
    assert_eq!(pkgs[0]["type"], "rubygems");
    assert_eq!(pkgs[0]["name"], "shop");
    assert_eq!(pkgs[0]["version"], "1.2.0");
    let names: Vec<&str> = pkgs[0]["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for want in ["gitgem", "localgem", "middle", "native", "rack", "top"] {
        assert!(names.contains(&want), "{want}: {pk}");
    }
    let (status, cm) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    assert_eq!(status, 200);
    let item = &cm["image_contents"][0];
    let purls: Vec<&str> = item["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["purl"].as_str().unwrap())
        .collect();
    for want in [
        "pkg:gem/rack@1.0.0",
        "pkg:gem/middle@0.3.1",
        "pkg:gem/top@0.1.0",
        "pkg:gem/native@1.0.0",
        "pkg:gem/native@1.0.0?platform=x86_64-linux",
        "pkg:gem/gitgem@0.2.0?vcs_url=git%2Bfile",
    ] {
        assert!(
            purls.iter().any(|p| p.starts_with(want)),
            "{want}: {purls:?}"
        );
    }
    assert!(
        purls
            .iter()
            .any(|p| p.contains("localgem") && p.ends_with("#gems/localgem")),
        "{purls:?}"
    );
    assert_eq!(item["dependencies"], item["sources"], "{cm}");

    // the bundle: deps/rubygems/ as vendor/cache
    let (bytes, _) = larder.download(id).await;
    assert_app_is_commit(&bytes, &repo.dir, &commit);
    let bundle_dir = t.join("bundle");
    unpack(&bytes, &bundle_dir);
    let cache = bundle_dir.join("deps/rubygems");
    for f in [
        "rack-1.0.0.gem",
        "middle-0.3.1.gem",
        "top-0.1.0.gem",
        "native-1.0.0.gem",
        "native-1.0.0-x86_64-linux.gem",
    ] {
        assert_eq!(
            std::fs::read(cache.join(f)).unwrap(),
            up.gem(f.trim_end_matches(".gem")).bytes,
            "{f}"
        );
    }
    assert!(!cache.join("undeclared-1.0.0.gem").exists());
    assert!(!cache.join("rack-2.0.0.gem").exists());
    let git_dir = cache.join(format!("gitgem-{}", &git_commit[..12]));
    assert!(
        git_dir.join(".bundlecache").is_file(),
        "{}",
        git_dir.display()
    );
    assert!(git_dir.join("gitgem.gemspec").is_file());

    // the configuration: .bundle/config pointing at the request's gem server
    let files = larder.config_files(id).await;
    let config = String::from_utf8(files["app/.bundle/config"].clone()).unwrap();
    assert!(
        config.contains(&format!("/repos/{id}/rubygems/")),
        "{config}"
    );
    assert!(config.contains("BUNDLE_FROZEN: \"true\""), "{config}");
    assert!(config.contains("BUNDLE_LOCAL__GITGEM:"), "{config}");
    assert!(!config.contains("BUNDLE_FORCE_RUBY_PLATFORM"), "{config}");

    // 1. offline from the bundle alone: bundle install --local from deps/rubygems
    let offline = t.join("offline");
    unpack(&bytes, &offline);
    up.server.clear_requests();
    let (ok, out) = bundle(
        &offline.join("app"),
        &t.join("home-offline"),
        &["install", "--local"],
        &[
            ("BUNDLE_CACHE_PATH", "../deps/rubygems"),
            ("BUNDLE_DEPLOYMENT", "true"),
        ],
    );
    assert!(ok, "bundle install --local from the bundle:\n{out}");
    let installed = installed_gems(&offline.join("app/vendor/bundle"));
    for g in [
        "rack-1.0.0",
        "middle-0.3.1",
        "top-0.1.0",
        "native-1.0.0-x86_64-linux",
    ] {
        assert!(
            installed.iter().any(|i| i == g),
            "{g}: {installed:?}\n{out}"
        );
    }
    // the git gem is used from its checkout in deps/rubygems
    let (ok, out) = bundle(
        &offline.join("app"),
        &t.join("home-offline"),
        &[
            "exec",
            "ruby",
            "-e",
            "require 'top'; require 'gitgem'; require 'localgem'; puts Gitgem::VARIANT",
        ],
        &[
            ("BUNDLE_CACHE_PATH", "../deps/rubygems"),
            ("BUNDLE_DEPLOYMENT", "true"),
        ],
    );
    assert!(ok && out.contains("gitgem-0.2.0"), "{out}");

    // 2. through the per-request gem server with the returned .bundle/config
    let online = bundle_dir.join("app");
    write(&online.join(".bundle/config"), &config);
    let (ok, out) = bundle(&online, &t.join("home-online"), &["install"], &[]);
    assert!(
        ok,
        "bundle install through the gem server:\n{out}\n{}",
        larder.logs()
    );
    let installed = installed_gems(&online.join("vendor/bundle"));
    for g in [
        "rack-1.0.0",
        "middle-0.3.1",
        "top-0.1.0",
        "native-1.0.0-x86_64-linux",
    ] {
        assert!(
            installed.iter().any(|i| i == g),
            "{g}: {installed:?}\n{out}"
        );
    }
    let (ok, out) = bundle(
        &online,
        &t.join("home-online"),
        &[
            "exec",
            "ruby",
            "-e",
            "require 'top'; require 'native'; require 'gitgem'; puts Native::VARIANT",
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("native-1.0.0-x86_64-linux"), "{out}");
    assert_eq!(
        up.server.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );

    // 3. a gem the lockfile does not declare cannot be locked against the gem server
    let extra = t.join("extra");
    unpack(&bytes, &extra);
    let app = extra.join("app");
    // (the local .bundle/config outranks the environment in Bundler: not frozen there)
    let unfrozen: String = config
        .lines()
        .filter(|l| !l.starts_with("BUNDLE_FROZEN") && !l.starts_with("BUNDLE_DEPLOYMENT"))
        .map(|l| format!("{l}\n"))
        .collect();
    write(&app.join(".bundle/config"), &unfrozen);
    let gemfile = std::fs::read_to_string(app.join("Gemfile")).unwrap();
    write(
        &app.join("Gemfile"),
        &format!("{gemfile}gem \"undeclared\"\n"),
    );
    let (ok, out) = bundle(&app, &t.join("home-extra"), &["lock"], &[]);
    assert!(!ok, "an undeclared gem was locked:\n{out}");
    assert!(out.contains("Could not find gem 'undeclared'"), "{out}");

    // 4. the token: HTTP Basic password; wrong or missing is a 401
    let base = format!("{}/repos/{id}/rubygems/", larder.url);
    let token = config
        .split("larder:")
        .nth(1)
        .and_then(|s| s.split('@').next())
        .unwrap()
        .to_string();
    for (password, want) in [
        (Some("wrong"), 401),
        (None, 401),
        (Some(token.as_str()), 200),
    ] {
        let mut req = larder.http.get(format!("{base}versions"));
        if let Some(p) = password {
            req = req.basic_auth("larder", Some(p));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{password:?}");
        if want == 200 {
            assert!(resp.headers().get("etag").is_some());
            assert!(resp.headers()["repr-digest"]
                .to_str()
                .unwrap()
                .starts_with("sha-256=:"));
            let etag = resp.headers()["etag"].to_str().unwrap().to_string();
            let body = resp.text().await.unwrap();
            assert!(body.contains("\nrack 1.0.0 "), "{body}");
            // what Bundler sends when it holds the document already
            let again = larder
                .http
                .get(format!("{base}versions"))
                .basic_auth("larder", Some(token.as_str()))
                .header("If-None-Match", &etag)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status().as_u16(), 304);
            assert!(!body.contains("undeclared"), "{body}");
        }
    }
    let info = larder
        .http
        .get(format!("{base}info/rack"))
        .basic_auth("larder", Some(&token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(info, format!("---\n{}\n", up.gem("rack-1.0.0").info_line()));
    // stale: 410
    larder.expire_all();
    let resp = larder
        .http
        .get(format!("{base}versions"))
        .basic_auth("larder", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 410);
}

/// A small repository locking `gems` (full names) from rubygems.org, with CHECKSUMS `sums`.
pub(crate) fn lockfile(gems: &[&str], sums: &[(&str, &str)], extra: &str) -> String {
    let mut specs = String::new();
    for g in gems {
        let (name, rest) = g.split_once('-').unwrap();
        specs.push_str(&format!("    {name} ({rest})\n"));
    }
    let deps: String = gems
        .iter()
        .map(|g| format!("  {}\n", g.split_once('-').unwrap().0))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut text = format!(
        "{extra}GEM\n  remote: https://rubygems.org/\n  specs:\n{specs}\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n{deps}"
    );
    if !sums.is_empty() {
        text.push_str("\nCHECKSUMS\n");
        for (g, s) in sums {
            let (name, rest) = g.split_once('-').unwrap();
            text.push_str(&format!("  {name} ({rest}) sha256={s}\n"));
        }
    }
    text.push_str("\nBUNDLED WITH\n   2.5.3\n");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn integrity_failures_paths_and_reuse() {
    let work = tempfile::tempdir().unwrap();
    let t = work.path();
    let up = upstream(t, &fixture_gems()).await;
    let larder = larder_for(&up).await;
    let submit = |dir: &str, lock: String, files: &[(&str, &str)]| {
        let repo = GitRepo::new(t.join(dir));
        repo.write("Gemfile", "source \"https://rubygems.org\"\n")
            .write("Gemfile.lock", &lock);
        for (p, c) in files {
            repo.write(p, c);
        }
        let commit = repo.commit(dir);
        json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["rubygems"]})
    };

    // a CHECKSUMS entry that does not match: failed, nothing stored
    let wrong = "00".repeat(32);
    let body = submit(
        "mismatch",
        lockfile(
            &["rack-1.0.0", "middle-0.3.1"],
            &[("rack-1.0.0", &wrong)],
            "",
        ),
        &[],
    );
    let r = larder.wait(larder.submit(body).await).await;
    assert_eq!(r["state"], "failed", "{r}");
    let reason = r["state_reason"].as_str().unwrap();
    assert!(
        reason.contains("CHECKSUMS") && reason.contains("rack-1.0.0"),
        "{reason}"
    );
    assert_eq!(
        store_files_under(larder.data.path(), "deps/rubygems"),
        Vec::<String>::new()
    );

    // a PATH source outside the repository fails
    let body = submit(
        "outside",
        format!(
            "PATH\n  remote: ../elsewhere\n  specs:\n    elsewhere (1.0.0)\n\n{}",
            lockfile(&["rack-1.0.0"], &[], "")
        ),
        &[],
    );
    let r = larder.wait(larder.submit(body).await).await;
    assert_eq!(r["state"], "failed", "{r}");
    assert!(
        r["state_reason"]
            .as_str()
            .unwrap()
            .contains("outside the repository"),
        "{r}"
    );

    // no CHECKSUMS entry: verified by the upstream index, whose digest is recorded
    up.server.clear_requests();
    // (and without the rubygems-platforms flag, only the ruby platform's gems)
    let lock_a = lockfile(
        &[
            "rack-1.0.0",
            "middle-0.3.1",
            "native-1.0.0",
            "native-1.0.0-x86_64-linux",
        ],
        &[],
        "",
    );
    let r = larder
        .wait(larder.submit(submit("first", lock_a.clone(), &[])).await)
        .await;
    assert_eq!(r["state"], "complete", "{r}\n{}", larder.logs());
    assert!(
        up.server.requests().contains(&"/info/rack".to_string()),
        "{:?}",
        up.server.requests()
    );
    let stored = store_files_under(larder.data.path(), "deps/rubygems");
    assert!(
        stored.contains(&"deps/rubygems/rack/rack-1.0.0.info-line".to_string()),
        "{stored:?}"
    );
    let pk = larder
        .get(&format!("/api/v1/requests/{}/packages", r["id"]))
        .await
        .1;
    assert_eq!(pk["packages"][0]["name"], "first", "{pk}");
    assert!(stored.contains(&"deps/rubygems/native/native-1.0.0.gem".to_string()));
    assert!(
        !stored.iter().any(|k| k.contains("x86_64-linux")),
        "{stored:?}"
    );
    let files = larder.config_files(r["id"].as_i64().unwrap()).await;
    let config = String::from_utf8(files["app/.bundle/config"].clone()).unwrap();
    assert!(
        config.contains("BUNDLE_FORCE_RUBY_PLATFORM: \"true\""),
        "{config}"
    );

    // a gem locked only as a platform gem needs the flag
    let only_platform = lockfile(&["native-1.0.0-x86_64-linux"], &[], "");
    let r = larder
        .wait(larder.submit(submit("platform", only_platform, &[])).await)
        .await;
    assert_eq!(r["state"], "failed", "{r}");
    assert!(
        r["state_reason"]
            .as_str()
            .unwrap()
            .contains("rubygems-platforms"),
        "{r}"
    );

    // reuse: the same gems again make no upstream request
    up.server.clear_requests();
    let r = larder
        .wait(larder.submit(submit("again", lock_a, &[])).await)
        .await;
    assert_eq!(r["state"], "complete", "{r}");
    assert_eq!(up.server.requests(), Vec::<String>::new());

    // two Gemfiles in one request: a package and a .bundle/config each
    let repo = GitRepo::new(t.join("two"));
    repo.write("Gemfile", "source \"https://rubygems.org\"\n")
        .write("Gemfile.lock", &lockfile(&["rack-1.0.0"], &[], ""))
        .write("sub/Gemfile", "source \"https://rubygems.org\"\n")
        .write(
            "sub/Gemfile.lock",
            &lockfile(&["rack-1.0.0", "middle-0.3.1"], &[], ""),
        )
        .write(
            "sub/sub.gemspec",
            "Gem::Specification.new do |spec|\n  spec.name = \"sub\".freeze\n  spec.version = \"0.9.0\".freeze\nend\n",
        );
    let commit = repo.commit("two");
    let id = larder
        .submit(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["rubygems"],
            "packages": {"rubygems": [{"path": "."}, {"path": "sub"}]}}),
        )
        .await;
    let r = larder.wait(id).await;
    assert_eq!(r["state"], "complete", "{r}\n{}", larder.logs());
    let pk = larder
        .get(&format!("/api/v1/requests/{id}/packages"))
        .await
        .1;
    let got: Vec<(String, String, Value)> = pk["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["path"].clone(),
            )
        })
        .collect();
    assert!(
        got.contains(&("two".into(), commit.clone(), Value::Null)),
        "{pk}"
    );
    assert!(
        got.contains(&("sub".into(), "0.9.0".into(), json!("sub"))),
        "{pk}"
    );
    let files = larder.config_files(id).await;
    assert!(
        files.contains_key("app/.bundle/config"),
        "{:?}",
        files.keys()
    );
    assert!(
        files.contains_key("app/sub/.bundle/config"),
        "{:?}",
        files.keys()
    );

    // upstream now serves another digest for a recorded gem: refused and reported
    let info = std::fs::read_to_string(up.dir.path().join("info/rack")).unwrap();
    let sum = &up.gem("rack-1.0.0").sha256;
    std::fs::write(
        up.dir.path().join("info/rack"),
        info.replace(sum.as_str(), &"11".repeat(32)),
    )
    .unwrap();
    let r = larder
        .wait(
            larder
                .submit(submit(
                    "changed",
                    lockfile(&["rack-1.0.0", "rack-2.0.0"], &[], ""),
                    &[],
                ))
                .await,
        )
        .await;
    assert_eq!(r["state"], "failed", "{r}");
    let reason = r["state_reason"].as_str().unwrap();
    assert!(
        reason.contains("recorded") && reason.contains("rack-1.0.0"),
        "{reason}"
    );
    assert!(!store_files_under(larder.data.path(), "deps/rubygems")
        .iter()
        .any(|k| k.contains("rack-2.0.0")));
}

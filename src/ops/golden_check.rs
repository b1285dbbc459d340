//! A golden's snapshot metadata, read as untrusted input [pure].
//!
//! libvirt's snapshot XML carries a whole domain definition, and a revert puts that definition
//! back: anything libvirt can express (a host block device, a shared host directory, a
//! `<qemu:commandline>`) could be written there by whoever made the file. So nothing of it is
//! handed to libvirt. The snapshot dcos-lab redefines is built here from the domain it has just
//! defined from the lab file, and takes from the golden only what must come from it: the
//! snapshot's name, state and time, and the guest CPU its saved memory was taken with (the
//! `<cookie>`, rebuilt from checked names). The golden's own domain is still compared, element by
//! element, with the one dcos-lab renders, and any difference refuses the golden, named: a
//! golden whose metadata says something else was not made by dcos-lab from this lab file.
//!
//! The comparison first removes what libvirt itself adds to a definition, in exactly the forms
//! it writes them (device addresses and aliases, default controllers and input devices, the
//! machine type's full name, the emulator this host uses, …), and the values that differ from
//! host to host (the domain's UUID and generation ID, the spec hash, the directories the lab and
//! the image cache were in).

use std::collections::BTreeMap;

use quick_xml::events::Event;

/// One XML element: its name as written (with a prefix), attributes, text, children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub text: String,
    pub children: Vec<Elem>,
}

impl Elem {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }

    fn child(&self, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name)
    }

    /// `<name a="v" …>` with the first path-like value below it, for a message.
    fn describe(&self) -> String {
        let attrs: Vec<String> = self
            .attrs
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let mut s = format!("<{}{}>", self.name, prefixed(" ", &attrs.join(" ")));
        if let Some(p) = self.first_path() {
            s.push_str(&format!(" (naming {p})"));
        }
        s
    }

    /// The first value in this element or below that looks like a host path.
    fn first_path(&self) -> Option<String> {
        let own = self
            .attrs
            .values()
            .chain(std::iter::once(&self.text))
            .find(|v| v.starts_with('/'))
            .cloned();
        own.or_else(|| self.children.iter().find_map(Elem::first_path))
    }
}

fn prefixed(p: &str, s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("{p}{s}")
    }
}

/// Parses `xml` into its root element. A DTD, an entity other than XML's five and character
/// references, or a processing instruction is refused: libvirt writes none.
pub fn parse(xml: &str) -> Result<Elem, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Elem> = Vec::new();
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Result<Elem, String> {
        let mut attrs = BTreeMap::new();
        for a in e.attributes() {
            let a = a.map_err(|e| format!("not well-formed XML ({e})"))?;
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| format!("not well-formed XML ({e})"))?;
            attrs.insert(a.key.as_ref().to_string(), v.into_owned());
        }
        Ok(Elem {
            name: e.name().as_ref().to_string(),
            attrs,
            text: String::new(),
            children: Vec::new(),
        })
    };
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML ({e})"))?;
        match ev {
            Event::Start(e) => stack.push(open(&e)?),
            Event::Empty(e) => {
                let el = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let mut el = stack
                    .pop()
                    .ok_or("not well-formed XML (an end tag too many)")?;
                el.text = el.text.trim().to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => match r.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => {
                            return Err(format!("it uses the entity &{other};"));
                        }
                    },
                };
                if let Some(el) = stack.last_mut() {
                    el.text.push(c);
                }
            }
            Event::Comment(_) | Event::Decl(_) => {}
            Event::DocType(_) => return Err("it has a document type declaration".into()),
            Event::PI(_) => return Err("it has a processing instruction".into()),
            Event::Eof => return Err("not well-formed XML (it ends inside an element)".into()),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The element as XML (attributes sorted; text escaped).
pub fn to_xml(e: &Elem) -> String {
    let attrs: String = e
        .attrs
        .iter()
        .map(|(k, v)| format!(" {k}=\"{}\"", escape(v)))
        .collect();
    if e.children.is_empty() && e.text.is_empty() {
        return format!("<{}{attrs}/>", e.name);
    }
    let inner: String = e.children.iter().map(to_xml).collect();
    format!("<{}{attrs}>{}{inner}</{}>", e.name, escape(&e.text), e.name)
}

/// What the restoring host gives every node, for the comparison.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// The machine type `q35` stands for here (`pc-q35-7.2`).
    pub machine: String,
    /// The emulator libvirt gives an x86_64 guest here.
    pub emulator: Option<String>,
    /// Directory prefixes of the exporting host and their counterparts here: the lab's
    /// directory, the image cache.
    pub rewrite: Vec<(String, String)>,
}

/// What a golden's snapshot metadata contributes: everything else is dcos-lab's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub name: String,
    /// `running` or `paused`: how the node was when the snapshot was taken.
    pub state: String,
    pub creation_time: u64,
    /// The guest CPU the saved memory was taken with, rebuilt from checked names.
    pub cookie: Option<String>,
}

/// Checks a golden's snapshot XML of one node against `rendered` (the domain XML dcos-lab
/// renders for that node here) and returns what may be taken from it. The error says what
/// differs and why it matters.
pub fn check_snapshot(
    xml: &str,
    snapshot: &str,
    rendered: &str,
    host: &HostFacts,
) -> Result<SnapshotFacts, String> {
    let root = parse(xml)?;
    if root.name != "domainsnapshot" {
        return Err(format!("its root is <{}>, not <domainsnapshot>", root.name));
    }
    let rendered = parse(rendered).map_err(|e| format!("dcos-lab's own domain XML: {e}"))?;
    let (mut name, mut state, mut time, mut cookie) = (None, None, None, None);
    let mut domains = 0;
    for c in &root.children {
        match c.name.as_str() {
            "name" => name = Some(c.text.clone()),
            "description" | "parent" => {}
            "state" => state = Some(c.text.clone()),
            "creationTime" => time = Some(c.text.clone()),
            "memory" => {
                if c.attrs.len() != 1 || c.attr("snapshot") != Some("internal") {
                    return Err(format!(
                        "its memory is {}, not saved inside the node's disk (snapshot='internal')",
                        c.describe()
                    ));
                }
            }
            "disks" => check_snapshot_disks(c)?,
            "domain" | "inactiveDomain" => {
                domains += 1;
                compare_domain(c, &rendered, host).map_err(|e| format!("its <{}> {e}", c.name))?;
            }
            "cookie" => cookie = Some(check_cookie(c)?),
            other => {
                return Err(format!(
                    "it has {}, which a snapshot of dcos-lab has not",
                    root.children
                        .iter()
                        .find(|x| x.name == other)
                        .map(Elem::describe)
                        .unwrap_or_default()
                ));
            }
        }
    }
    if domains == 0 {
        return Err("it has no <domain>".into());
    }
    let name = name.ok_or("it has no <name>")?;
    if name != snapshot {
        return Err(format!(
            "it is snapshot {name:?}, the manifest says {snapshot:?}"
        ));
    }
    let state = state.ok_or("it has no <state>")?;
    if state != "running" && state != "paused" {
        return Err(format!(
            "its state is {state:?}; a golden's snapshot is of a running lab (running or paused)"
        ));
    }
    let creation_time = time
        .as_deref()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| format!("its creationTime {time:?} is not a number of seconds"))?;
    Ok(SnapshotFacts {
        name,
        state,
        creation_time,
        cookie: cookie.flatten(),
    })
}

/// The snapshot XML dcos-lab redefines: `facts` from the golden, the disks as dcos-lab takes
/// snapshots, and `domain`, the definition libvirt holds for the node just defined from the lab
/// file.
pub fn snapshot_xml(facts: &SnapshotFacts, lab: &str, domain: &str) -> String {
    format!(
        "<domainsnapshot>\n  <name>{}</name>\n  <description>dcos-lab lab {}</description>\n  <state>{}</state>\n  <creationTime>{}</creationTime>\n  <memory snapshot='internal'/>\n  <disks>\n    <disk name='vda' snapshot='internal'/>\n    <disk name='vdb' snapshot='no'/>\n  </disks>\n{}\n{}</domainsnapshot>\n",
        escape(&facts.name),
        escape(lab),
        escape(&facts.state),
        facts.creation_time,
        domain.trim(),
        facts.cookie.as_deref().unwrap_or(""),
    )
}

fn check_snapshot_disks(disks: &Elem) -> Result<(), String> {
    for d in &disks.children {
        let ok = d.name == "disk"
            && d.children.is_empty()
            && d.attrs.len() == 2
            && matches!(
                (d.attr("name"), d.attr("snapshot")),
                (Some("vda"), Some("internal")) | (Some("vdb"), Some("no"))
            );
        if !ok {
            return Err(format!(
                "its disks have {}; dcos-lab snapshots vda inside the node's disk and never vdb",
                d.describe()
            ));
        }
    }
    Ok(())
}

/// A plain name: a CPU model or feature, a policy.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The `<cookie>` rebuilt from its checked parts: a `<cpu>` of plain names only. libvirt's
/// `<slirpHelper/>` (user-mode networking, which no lab node has) is dropped.
fn check_cookie(cookie: &Elem) -> Result<Option<String>, String> {
    let bad = |e: &Elem| {
        format!(
            "its <cookie> has {}, which is not a guest CPU",
            e.describe()
        )
    };
    let mut out = Elem {
        name: "cookie".into(),
        attrs: BTreeMap::new(),
        text: String::new(),
        children: Vec::new(),
    };
    for c in &cookie.children {
        match c.name.as_str() {
            "slirpHelper" if c.attrs.is_empty() && c.children.is_empty() => {}
            "cpu" => {
                let attrs_ok = c
                    .attrs
                    .iter()
                    .all(|(k, v)| ["mode", "match", "check"].contains(&k.as_str()) && plain(v));
                if !attrs_ok || !c.text.is_empty() {
                    return Err(bad(c));
                }
                for f in &c.children {
                    let ok = match f.name.as_str() {
                        "model" => {
                            plain(&f.text)
                                && f.children.is_empty()
                                && f.attrs.iter().all(|(k, v)| {
                                    ["fallback", "vendor_id"].contains(&k.as_str()) && plain(v)
                                })
                        }
                        "vendor" => plain(&f.text) && f.attrs.is_empty() && f.children.is_empty(),
                        "feature" => {
                            f.text.is_empty()
                                && f.children.is_empty()
                                && f.attrs.len() == 2
                                && f.attr("policy").is_some_and(plain)
                                && f.attr("name").is_some_and(plain)
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(bad(f));
                    }
                }
                out.children.push(c.clone());
            }
            _ => return Err(bad(c)),
        }
    }
    Ok((!out.children.is_empty()).then(|| to_xml(&out)))
}

/// Compares a golden's domain (`<domain>` or `<inactiveDomain>`) with the rendered one; the
/// error names the first difference.
fn compare_domain(golden: &Elem, rendered: &Elem, host: &HostFacts) -> Result<(), String> {
    let mut g = golden.clone();
    g.name = "domain".into();
    rewrite_paths(&mut g, &host.rewrite);
    let g = without_libvirt_additions(g, rendered, host);
    let r = comparable(rendered.clone());
    diff(&g, &r, "domain")
}

/// Every value that starts with an exporting host's directory, moved to this host's.
fn rewrite_paths(e: &mut Elem, rewrite: &[(String, String)]) {
    let fix = |v: &mut String| {
        for (old, new) in rewrite {
            if old.is_empty() || old == new {
                continue;
            }
            if v == old {
                *v = new.clone();
                return;
            }
            if let Some(rest) = v.strip_prefix(&format!("{old}/")) {
                *v = format!("{new}/{rest}");
                return;
            }
        }
    };
    for v in e.attrs.values_mut() {
        fix(v);
    }
    fix(&mut e.text);
    for c in &mut e.children {
        rewrite_paths(c, rewrite);
    }
}

/// What differs from host to host or from definition to definition whatever the lab file says,
/// taken out of either side: the UUID, the generation ID, the spec hash (taken over the host's
/// paths), the user who made it; the translation cache in KiB.
fn comparable(mut e: Elem) -> Elem {
    e.children.retain(|c| c.name != "uuid" && c.name != "genid");
    if let Some(m) = e.children.iter_mut().find(|c| c.name == "metadata") {
        for tag in &mut m.children {
            if tag.name == "dcoslab:lab" {
                tag.attrs.remove("spec");
                // Whose lab it was where it was made: the restored lab is the restoring user's.
                tag.attrs.remove("owner");
            }
        }
    }
    if let Some(tb) = e
        .children
        .iter_mut()
        .filter(|c| c.name == "features")
        .flat_map(|f| f.children.iter_mut())
        .filter(|c| c.name == "tcg")
        .flat_map(|t| t.children.iter_mut())
        .find(|c| c.name == "tb-cache")
        && tb.attr("unit") == Some("MiB")
        && let Ok(n) = tb.text.parse::<u64>()
    {
        tb.text = (n * 1024).to_string();
        tb.attrs.insert("unit".into(), "KiB".into());
    }
    e
}

fn attrs_within(e: &Elem, allowed: &[&str]) -> bool {
    e.attrs.keys().all(|k| allowed.contains(&k.as_str()))
}

/// An `<address>` or `<alias>` as libvirt writes them inside a device: attributes only.
fn is_address_or_alias(e: &Elem) -> bool {
    (e.name == "address" || e.name == "alias") && e.children.is_empty() && e.text.is_empty()
}

/// Removes from a golden's domain what libvirt adds to every definition, in the forms libvirt
/// writes it; anything else stays and must match `rendered`.
fn without_libvirt_additions(g: Elem, rendered: &Elem, host: &HostFacts) -> Elem {
    let mut g = comparable(g);
    g.attrs.remove("id");
    let memory = g.child("memory").cloned();
    let rendered_os_boot = rendered
        .child("os")
        .is_some_and(|os| os.child("boot").is_some());
    let rendered_cpu = rendered.child("cpu").cloned();
    g.children.retain(|c| match c.name.as_str() {
        "currentMemory" => memory
            .as_ref()
            .is_none_or(|m| m.text != c.text || m.attrs != c.attrs),
        "resource" => {
            !(c.children.len() == 1
                && c.children[0].name == "partition"
                && c.children[0].text == "/machine")
        }
        "seclabel" => {
            !(c.attr("type") == Some("dynamic")
                && attrs_within(c, &["type", "model", "relabel"])
                && c.children.iter().all(|l| {
                    ["label", "imagelabel", "baselabel"].contains(&l.name.as_str())
                        && l.children.is_empty()
                }))
        }
        // The guest CPU libvirt fills in for QEMU's default model (TCG).
        "cpu" if rendered_cpu.is_none() => {
            !(c.attr("mode") == Some("custom")
                && attrs_within(c, &["mode", "match", "check"])
                && c.children.iter().all(|f| {
                    (f.name == "model" && plain(&f.text) && attrs_within(f, &["fallback"]))
                        || (f.name == "feature"
                            && f.attr("name").is_some_and(plain)
                            && attrs_within(f, &["policy", "name"]))
                }))
        }
        _ => true,
    });
    for c in &mut g.children {
        match c.name.as_str() {
            "vcpu" if c.attr("placement") == Some("static") => {
                c.attrs.remove("placement");
            }
            "cpu"
                if rendered_cpu
                    .as_ref()
                    .is_some_and(|r| r.attr("mode") == Some("host-passthrough")) =>
            {
                if c.attr("check") == Some("none") {
                    c.attrs.remove("check");
                }
                if c.attr("migratable") == Some("on") {
                    c.attrs.remove("migratable");
                }
            }
            "os" => {
                for t in &mut c.children {
                    if t.name == "type" && t.attr("machine") == Some(host.machine.as_str()) {
                        t.attrs.insert("machine".into(), "q35".into());
                    }
                }
                if !rendered_os_boot {
                    c.children
                        .retain(|b| !(b.name == "boot" && b.attr("dev") == Some("hd")));
                }
            }
            "devices" => devices_without_additions(c, host),
            _ => {}
        }
    }
    g
}

fn devices_without_additions(devices: &mut Elem, host: &HostFacts) {
    let serial_log = devices
        .child("serial")
        .and_then(|s| s.child("log"))
        .cloned();
    devices.children.retain(|d| match d.name.as_str() {
        "emulator" => host.emulator.as_deref() != Some(d.text.as_str()),
        "controller" => {
            !(attrs_within(d, &["type", "index", "model"])
                && d.attr("type").is_some_and(|t| {
                    ["usb", "sata", "pci", "virtio-serial", "ide", "scsi"].contains(&t)
                })
                && d.children.iter().all(|c| {
                    is_address_or_alias(c)
                        || (c.name == "model"
                            && attrs_within(c, &["name"])
                            && c.children.is_empty())
                        || (c.name == "target"
                            && attrs_within(c, &["chassis", "port", "busNr", "index"])
                            && c.children.is_empty())
                }))
        }
        "input" => {
            !(attrs_within(d, &["type", "bus"]) && d.children.iter().all(is_address_or_alias))
        }
        "audio" => {
            !(d.attr("type") == Some("none")
                && attrs_within(d, &["id", "type"])
                && d.children.is_empty())
        }
        "memballoon" => {
            !(attrs_within(d, &["model"]) && d.children.iter().all(is_address_or_alias))
        }
        // The q35 chipset's own watchdog, which libvirt 9.1 and later write out.
        "watchdog" => {
            !(d.attr("model") == Some("itco")
                && d.attr("action") == Some("reset")
                && attrs_within(d, &["model", "action"])
                && d.children.iter().all(is_address_or_alias))
        }
        _ => true,
    });
    for d in &mut devices.children {
        d.children.retain(|c| !is_address_or_alias(c));
        match d.name.as_str() {
            "disk" => {
                // The chain libvirt found behind a raw disk: none.
                d.children.retain(|c| {
                    !(c.name == "backingStore" && c.attrs.is_empty() && c.children.is_empty())
                });
                for c in &mut d.children {
                    without_index(c);
                }
            }
            "serial" => {
                for t in &mut d.children {
                    if t.name == "target" {
                        if t.attr("type") == Some("isa-serial") {
                            t.attrs.remove("type");
                        }
                        t.children.retain(|m| {
                            !(m.name == "model" && m.attr("name") == Some("isa-serial"))
                        });
                    }
                }
            }
            // libvirt shows the serial port's log on the console that is that port.
            "console" => d
                .children
                .retain(|l| !(l.name == "log" && Some(l) == serial_log.as_ref())),
            _ => {}
        }
    }
}

/// A disk's `<source index=…>` and `<backingStore index=…>`, all the way down.
fn without_index(e: &mut Elem) {
    if e.name == "source" || e.name == "backingStore" {
        e.attrs.remove("index");
    }
    for c in &mut e.children {
        without_index(c);
    }
}

/// The first difference between `g` (the golden's) and `r` (dcos-lab's), at `path`.
fn diff(g: &Elem, r: &Elem, path: &str) -> Result<(), String> {
    if g.name != r.name {
        return Err(format!(
            "has {} at {path} where dcos-lab renders <{}>",
            g.describe(),
            r.name
        ));
    }
    for (k, v) in &g.attrs {
        match r.attrs.get(k) {
            Some(rv) if rv == v => {}
            Some(rv) => {
                return Err(format!(
                    "has {k}=\"{v}\" at {path} where dcos-lab renders {k}=\"{rv}\""
                ));
            }
            None => {
                return Err(format!(
                    "has {k}=\"{v}\" at {path}, which dcos-lab does not render"
                ));
            }
        }
    }
    if let Some(k) = r.attrs.keys().find(|k| !g.attrs.contains_key(*k)) {
        return Err(format!("lacks {k} at {path}, which dcos-lab renders"));
    }
    if g.text != r.text {
        return Err(format!(
            "has {:?} at {path} where dcos-lab renders {:?}",
            g.text, r.text
        ));
    }
    // Children by name and position among those of the same name: `devices/disk[2]`.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ri = r.children.iter();
    for gc in &g.children {
        let n = seen.entry(gc.name.as_str()).or_default();
        *n += 1;
        let here = if *n > 1 || g.children.iter().filter(|c| c.name == gc.name).count() > 1 {
            format!("{path}/{}[{n}]", gc.name)
        } else {
            format!("{path}/{}", gc.name)
        };
        match ri.next() {
            Some(rc) if rc.name == gc.name => diff(gc, rc, &here)?,
            Some(rc) if r.children.iter().any(|x| x.name == gc.name) => {
                return Err(format!(
                    "lacks <{}> before {here}, which dcos-lab renders",
                    rc.name
                ));
            }
            _ => {
                return Err(format!(
                    "has {} at {here}, which dcos-lab does not render{}",
                    gc.describe(),
                    namespace_note(gc, g)
                ));
            }
        }
    }
    if let Some(rc) = ri.next() {
        return Err(format!(
            "lacks <{}> in {path}, which dcos-lab renders",
            rc.name
        ));
    }
    Ok(())
}

/// For an element of another XML namespace (`qemu:commandline`), which namespace.
fn namespace_note(e: &Elem, parent: &Elem) -> String {
    let Some((prefix, _)) = e.name.split_once(':') else {
        return String::new();
    };
    let key = format!("xmlns:{prefix}");
    let uri = e.attr(&key).or_else(|| parent.attr(&key)).unwrap_or("");
    format!(" (namespace {prefix}{})", prefixed(" = ", uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot libvirt 9.0 wrote of a lab node (the lab in /tmp/dltest-probe/state), and the
    /// domain XML dcos-lab rendered for that node.
    const SNAPSHOT: &str = include_str!("../../tests/fixtures/snapshot-xml/libvirt-9-master.xml");
    const RENDERED: &str = include_str!("../../tests/fixtures/snapshot-xml/rendered-master.xml");
    const SEED: &str = "/tmp/dltest-probe/state/labs/dltest-probe/disks/master-seed.img";

    fn host() -> HostFacts {
        HostFacts {
            machine: "pc-q35-7.2".into(),
            emulator: Some("/usr/bin/qemu-system-x86_64".into()),
            rewrite: Vec::new(),
        }
    }

    fn refused(xml: &str) -> String {
        check_snapshot(xml, "s1", RENDERED, &host()).expect_err("refused")
    }

    /// The golden's domain and inactive domain both get the change.
    fn both(from: &str, to: &str) -> String {
        assert_eq!(SNAPSHOT.matches(from).count(), 2, "{from}");
        SNAPSHOT.replace(from, to)
    }

    #[test]
    fn what_libvirt_wrote_of_a_lab_node_passes_and_gives_name_state_time_and_cpu() {
        let f = check_snapshot(SNAPSHOT, "s1", RENDERED, &host()).expect("passes");
        assert_eq!((f.name.as_str(), f.state.as_str()), ("s1", "paused"));
        assert_eq!(f.creation_time, 1_796_655_610);
        let cookie = f.cookie.expect("cookie");
        assert!(cookie.contains(">qemu64</model>"), "{cookie}");
        assert!(!cookie.contains("slirpHelper"), "{cookie}");
        let xml = snapshot_xml(
            &SnapshotFacts {
                name: "s1".into(),
                state: "paused".into(),
                creation_time: 5,
                cookie: Some(cookie),
            },
            "dltest-probe",
            "<domain type='qemu'><name>d</name></domain>",
        );
        let back = parse(&xml).expect("well-formed");
        assert_eq!(back.child("name").map(|n| n.text.as_str()), Some("s1"));
        assert_eq!(
            back.child("domain")
                .and_then(|d| d.child("name"))
                .map(|n| n.text.as_str()),
            Some("d")
        );
        assert!(back.child("cookie").is_some());
    }

    /// What libvirt 9.1 and later add to a q35 domain passes as libvirt's own.
    #[test]
    fn the_q35_watchdog_newer_libvirt_writes_passes() {
        let newer = both(
            "<input type='mouse' bus='ps2'/>",
            "<input type='mouse' bus='ps2'/>\n      <watchdog model='itco' action='reset'/>",
        );
        check_snapshot(&newer, "s1", RENDERED, &host()).expect("passes");
    }

    /// A golden made by another user (or before labs recorded their user) restores as this
    /// user's lab.
    #[test]
    fn a_golden_of_another_user_passes() {
        let theirs = both("version=\"0.1.0\">", "version=\"0.1.0\" owner=\"1000\">");
        let ours = RENDERED.replace("version=\"0.1.0\">", "version=\"0.1.0\" owner=\"1001\">");
        check_snapshot(&theirs, "s1", &ours, &host()).expect("passes");
        check_snapshot(SNAPSHOT, "s1", &ours, &host()).expect("passes");
    }

    #[test]
    fn a_golden_made_under_other_directories_passes_once_they_are_mapped() {
        let moved = SNAPSHOT
            .replace(
                "/tmp/dltest-probe/state/labs/dltest-probe",
                "/srv/x/labs/dltest-probe",
            )
            .replace(
                "/var/cache/dcos-lab/images",
                "/home/ci/.cache/dcos-lab/images",
            );
        assert!(check_snapshot(&moved, "s1", RENDERED, &host()).is_err());
        let mut h = host();
        h.rewrite = vec![
            (
                "/srv/x/labs/dltest-probe".into(),
                "/tmp/dltest-probe/state/labs/dltest-probe".into(),
            ),
            (
                "/home/ci/.cache/dcos-lab/images".into(),
                "/var/cache/dcos-lab/images".into(),
            ),
        ];
        check_snapshot(&moved, "s1", RENDERED, &h).expect("passes");
    }

    #[test]
    fn a_seed_disk_pointed_at_a_host_file_is_refused_naming_it() {
        let e = refused(&both(SEED, "/var/tmp/FILE"));
        assert!(e.contains("/var/tmp/FILE") && e.contains("disk[2]"), "{e}");
        // A host block device instead of a file.
        let e = refused(&SNAPSHOT.replacen(
            &format!("<disk type='file' device='disk'>\n        <driver name='qemu' type='raw'/>\n        <source file='{SEED}'/>"),
            "<disk type='block' device='disk'>\n        <driver name='qemu' type='raw'/>\n        <source dev='/dev/vda'/>",
            1,
        ));
        assert!(e.contains("block") || e.contains("/dev/vda"), "{e}");
        // The base image's backing store pointed elsewhere.
        let e = refused(&both(
            "<source file='/var/cache/dcos-lab/images/debian-12-2aa937b78bf2/disk.qcow2'/>",
            "<source file='/root/secret'/>",
        ));
        assert!(e.contains("/root/secret"), "{e}");
    }

    #[test]
    fn a_shared_host_directory_a_qemu_command_line_and_other_additions_are_refused() {
        let fs = "<filesystem type='mount' accessmode='passthrough'><source dir='/var/tmp/dltest-share'/><target dir='share'/></filesystem>";
        let e = refused(&SNAPSHOT.replacen(
            "<interface type='network'>",
            &format!("{fs}<interface type='network'>"),
            1,
        ));
        assert!(
            e.contains("<filesystem") && e.contains("/var/tmp/dltest-share"),
            "{e}"
        );
        // In the inactive domain only (what a revert would make the persistent definition).
        let at = SNAPSHOT
            .rfind("<interface type='network'>")
            .expect("inactive");
        let mut late = SNAPSHOT.to_string();
        late.insert_str(at, fs);
        let e = refused(&late);
        assert!(
            e.contains("inactiveDomain") && e.contains("<filesystem"),
            "{e}"
        );
        let qemu = SNAPSHOT.replacen(
            "<domain type='qemu'>",
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
            1,
        ).replacen("</devices>\n  </domain>", "</devices>\n<qemu:commandline><qemu:arg value='-fsdev'/></qemu:commandline>\n  </domain>", 1);
        let e = refused(&qemu);
        assert!(e.contains("xmlns:qemu"), "{e}");
        for (what, from, to) in [
            (
                "emulator",
                "<emulator>/usr/bin/qemu-system-x86_64</emulator>",
                "<emulator>/var/tmp/evil</emulator>",
            ),
            (
                "hostdev",
                "<input type='mouse' bus='ps2'/>",
                "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/></source></hostdev>",
            ),
            (
                "seclabel",
                "<resource>",
                "<seclabel type='static' model='dac' relabel='no'><label>0:0</label></seclabel><resource>",
            ),
            (
                "rng",
                "<backend model='random'>/dev/urandom</backend>",
                "<backend model='random'>/dev/sda</backend>",
            ),
            ("kernel", "<kernel>/var/cache", "<kernel>/root/cache"),
            (
                "watchdog",
                "<input type='mouse' bus='ps2'/>",
                "<watchdog model='i6300esb' action='dump'/>",
            ),
            (
                "serial log",
                "console/master.log' append='off'/>\n        <target type='isa-serial'",
                "console/../../../../../etc/x' append='off'/>\n        <target type='isa-serial'",
            ),
        ] {
            let e = refused(&SNAPSHOT.replacen(from, to, 1));
            assert!(!e.is_empty(), "{what}: {e}");
        }
    }

    #[test]
    fn the_snapshot_itself_must_be_one_dcos_lab_takes() {
        for (from, to, says) in [
            (
                "<memory snapshot='internal'/>",
                "<memory snapshot='external' file='/var/tmp/mem'/>",
                "/var/tmp/mem",
            ),
            (
                "<disk name='vdb' snapshot='no'/>",
                "<disk name='vdb' snapshot='external'><source file='/var/tmp/x'/></disk>",
                "vdb",
            ),
            ("<state>paused</state>", "<state>shutoff</state>", "shutoff"),
            ("<name>s1</name>", "<name>other</name>", "other"),
            (
                "<creationTime>1796655610</creationTime>",
                "<creationTime>soon</creationTime>",
                "soon",
            ),
            (
                "<feature policy='require' name='hypervisor'/>",
                "<feature policy='require' name='../x'/>",
                "cookie",
            ),
            (
                "<description>",
                "<active>1</active><description>",
                "<active",
            ),
        ] {
            let e = refused(&SNAPSHOT.replacen(from, to, 1));
            assert!(e.contains(says), "{from} -> {to}: {e}");
        }
        assert!(
            refused("<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/shadow'>]><domainsnapshot/>")
                .contains("document type")
        );
        assert!(refused("<domain/>").contains("not <domainsnapshot>"));
    }
}

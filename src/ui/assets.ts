// The web UI's only style sheet and script, inlined in every page (no build step, no extra requests).

export const STYLE = `
:root{--bg:#f5f6f8;--fg:#18202c;--muted:#5b6577;--card:#fff;--line:#e2e5ea;--accent:#1f55d6;--accent-soft:#e8eefc;--code:#f0f2f5;
--danger:#c02b2b;--danger-soft:#fdecec;--ok:#17703f;--ok-soft:#e6f4ec;--warn:#8a5a00;--warn-soft:#fdf3de;--violet:#6a3fc1;--violet-soft:#f0eafb;
--radius:12px;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0e1116;--fg:#e4e8ee;--muted:#98a2b3;--card:#161a21;--line:#29303b;--accent:#7ea3ff;
--accent-soft:#1b2540;--code:#1e242d;--danger:#ff7a7a;--danger-soft:#3a1a1c;--ok:#5bd192;--ok-soft:#15301f;--warn:#f3c35b;--warn-soft:#352a12;
--violet:#b99bff;--violet-soft:#271d3f}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,monospace;font-size:.86em}
h1{font-size:1.55rem;line-height:1.25;margin:.2rem 0 .4rem;word-break:break-word}
h2{font-size:1.02rem;margin:0 0 .8rem}
h3{font-size:.95rem;margin:1rem 0 .5rem;display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
h3>*{min-width:0;overflow-wrap:anywhere}
.top{background:var(--card);border-bottom:1px solid var(--line);position:sticky;top:0;z-index:1}
.bar{max-width:1000px;margin:0 auto;padding:10px 16px;display:flex;gap:10px 14px;align-items:center;flex-wrap:wrap}
.brand{display:flex;gap:8px;align-items:center;font-weight:650;color:var(--fg);white-space:nowrap}
.brand:hover{text-decoration:none}
.brand svg{flex:none}
.bar .search{flex:1 1 260px;order:3;display:flex;gap:8px}
.user{margin-left:auto;display:flex;gap:8px;align-items:center;font-size:.9rem;color:var(--muted)}
@media (min-width:720px){.bar .search{order:0;max-width:440px}}
input[type=search],input[type=password],input[type=text]{width:100%;min-width:0;padding:9px 12px;border:1px solid var(--line);
border-radius:9px;background:var(--bg);color:var(--fg);font:inherit}
input:focus-visible,button:focus-visible,a:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
button,.button{display:inline-flex;align-items:center;justify-content:center;gap:6px;padding:8px 14px;border-radius:9px;
border:1px solid var(--line);background:var(--card);color:var(--fg);font:inherit;font-size:.9rem;font-weight:550;cursor:pointer;
white-space:nowrap;text-decoration:none}
button:hover,.button:hover{border-color:var(--muted);text-decoration:none}
.primary{background:var(--accent);border-color:var(--accent);color:#fff}
@media (prefers-color-scheme:dark){.primary{color:#0e1116}}
.danger{background:var(--danger);border-color:var(--danger);color:#fff}
.small{padding:4px 10px;font-size:.8rem;border-radius:7px}
.link{border:0;background:none;padding:0;color:var(--accent);font-weight:500}
main{max-width:1000px;margin:0 auto;padding:20px 16px 56px}
.crumbs{font-size:.88rem;color:var(--muted);margin-bottom:4px;word-break:break-all}
.lead{color:var(--muted);margin:.2rem 0 1.1rem;max-width:70ch}
.card{background:var(--card);border:1px solid var(--line);border-radius:var(--radius);padding:16px;margin:0 0 16px}
.card.flush{padding:0}.card.flush>h2{padding:16px 16px 0}
.notice{border-radius:10px;padding:10px 14px;margin:0 0 16px;background:var(--accent-soft)}
.notice.ok{background:var(--ok-soft);color:var(--ok)}.notice.error{background:var(--danger-soft);color:var(--danger)}
.muted{color:var(--muted)}
.count{color:var(--muted);font-weight:500}
.sub{color:var(--muted);font-weight:400;font-size:.85rem}
.rows{list-style:none;margin:0;padding:0}
.rows>li{display:flex;gap:12px;align-items:center;padding:12px 16px;border-top:1px solid var(--line)}
.card>.rows:first-child>li:first-child{border-top:0}
.card:not(.flush) .rows>li{padding-left:0;padding-right:0}
.grow{flex:1;min-width:0}
.name{font-weight:620;font-size:1.02rem;word-break:break-all}
.desc{margin:.15rem 0 .25rem;color:var(--fg)}
.meta{font-size:.85rem;color:var(--muted);display:flex;flex-wrap:wrap;gap:2px 12px}
.badges{display:inline-flex;flex-wrap:wrap;gap:4px;vertical-align:middle;margin-left:6px}
.lead .badges{margin-left:0;margin-right:4px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:.74rem;font-weight:560;line-height:1.6;
background:var(--code);color:var(--muted);white-space:nowrap}
.badge.sbom{background:var(--ok-soft);color:var(--ok)}.badge.signature{background:var(--accent-soft);color:var(--accent)}
.badge.scan{background:var(--warn-soft);color:var(--warn)}.badge.attestation{background:var(--violet-soft);color:var(--violet)}
.badge.signed{background:var(--ok-soft);color:var(--ok)}.badge.signature-invalid{background:var(--danger-soft);color:var(--danger)}.badge.signature-pending{background:var(--warn-soft);color:var(--warn)}
.badge.vuln-bad,.badge.sev-critical,.badge.sev-high{background:var(--danger-soft);color:var(--danger)}.badge.vuln-some,.badge.sev-medium,.badge.vuln-pending{background:var(--warn-soft);color:var(--warn)}
.badge.vuln-clean{background:var(--ok-soft);color:var(--ok)}.badge.vuln-suppressed{background:var(--violet-soft);color:var(--violet);margin-left:4px}
.pull{display:flex;align-items:center;gap:8px;background:var(--code);border-radius:9px;padding:5px 5px 5px 12px;margin:0 0 8px}
.pull:last-child{margin-bottom:0}
.pull code{flex:1;min-width:0;overflow-x:auto;white-space:nowrap;padding:4px 0}
.kv{display:grid;grid-template-columns:minmax(110px,max-content) 1fr;gap:8px 18px;margin:0}
.kv dt{color:var(--muted);font-size:.9rem}.kv dd{margin:0;min-width:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:8px 10px;border-top:1px solid var(--line);vertical-align:top}
th{font-size:.74rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);font-weight:600;border-top:0}
td.num,th.num{text-align:right;white-space:nowrap}
td.break{overflow-wrap:anywhere}
.cmd{display:block;color:var(--muted);font-size:.8rem;overflow-wrap:anywhere;margin-top:2px}
ul.plain{margin:0;padding-left:1.1rem}ul.plain li{overflow-wrap:anywhere}
.pager{display:flex;justify-content:center;padding:14px}
.empty{padding:28px 16px;text-align:center;color:var(--muted)}
form.inline{display:inline}
.actions{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin-top:14px}
.login{max-width:460px;margin:24px auto}
.filters{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:10px 14px;align-items:end}
.filters label{display:flex;flex-direction:column;gap:4px;font-size:.85rem;color:var(--muted)}.filters .actions{margin:0}
select{padding:9px 12px;border:1px solid var(--line);border-radius:9px;background:var(--bg);color:var(--fg);font:inherit}
td.nowrap{white-space:nowrap}.badge.result-bad{background:var(--danger-soft);color:var(--danger)}
.login label{display:block;font-weight:560;margin:0 0 6px}
@media (max-width:600px){h1{font-size:1.3rem}.kv{grid-template-columns:1fr;gap:2px}.kv dd{margin-bottom:10px}
.hide-sm{display:none}.rows>li{padding:12px}.card{padding:14px}.card.flush>h2{padding:14px 14px 0}main{padding:16px 12px 40px}}
`;

// Copy buttons: <button data-copy="text">. The clipboard API needs a secure context (https or localhost); otherwise a
// hidden textarea and execCommand, and if that fails too the text is selected for the visitor to copy.
export const SCRIPT = `
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
  if (!button) return;
  const text = button.getAttribute("data-copy");
  let copied = false;
  try { await navigator.clipboard.writeText(text); copied = true; } catch {}
  if (!copied) {
    const area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.append(area); area.select();
    try { copied = document.execCommand("copy"); } catch {}
    area.remove();
  }
  if (!copied) {
    const code = button.parentElement && button.parentElement.querySelector("code");
    if (code) window.getSelection().selectAllChildren(code);
  }
  button.textContent = copied ? "Copied" : "Select and copy";
  clearTimeout(button.copyTimer);
  button.copyTimer = setTimeout(() => { button.textContent = button.getAttribute("data-label"); }, 1600);
});
`;

export const FAVICON =
  "data:image/svg+xml," +
  encodeURIComponent(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#1f55d6"/><path d="M16 6l9 5v10l-9 5-9-5V11z" fill="none" stroke="#fff" stroke-width="2.4" stroke-linejoin="round"/><path d="M7 11l9 5 9-5M16 16v10" fill="none" stroke="#fff" stroke-width="2.4" stroke-linejoin="round"/></svg>`,
  );

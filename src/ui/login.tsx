export function LoginPage(props: { next: string; error: string | null; open: boolean }) {
  if (props.open) {
    return (
      <section class="card login">
        <h1>No login needed</h1>
        <p class="lead">This registry runs with AUTH_MODE=open: everyone sees and may change everything.</p>
        <a class="button" href="/">
          Back to repositories
        </a>
      </section>
    );
  }
  return (
    <section class="card login">
      <h1>Log in</h1>
      <p class="lead">
        Paste an access token (<code>ocr_…</code>, the password you give <code>docker login</code>). You will see the repositories
        it may pull; the browser keeps a signed session for 12 hours, not the token. The admin token also shows the audit log.
      </p>
      {props.error && <div class="notice error">{props.error}</div>}
      <form method="post" action="/login">
        <input type="hidden" name="next" value={props.next} />
        <label for="token">Access token (or the admin token)</label>
        <input id="token" type="password" name="token" autocomplete="off" spellcheck={false} required autofocus />
        <div class="actions">
          <button class="primary" type="submit">
            Log in
          </button>
          <a href="/">Cancel</a>
        </div>
      </form>
    </section>
  );
}

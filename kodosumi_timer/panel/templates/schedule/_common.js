/* kodosumi-timer pages: time formatting, run statuses, the JSON API, messages.
   Included into kodosumi's page frame (a Jinja template: no double braces here). */
const SCHED = (() => {
    const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    /* icon, colour class, label, meaning (the legend under a run history) */
    const RUN_STATUS = {
        queued:    ['hourglass_empty', 'waiting', 'queued', 'claimed by the timer, waiting for its time or for room to start'],
        launching: ['send', 'waiting', 'launching', 'being sent to kodosumi right now'],
        launched:  ['rocket_launch', 'good', 'launched', 'kodosumi accepted it; the execution is starting'],
        running:   ['autorenew', 'busy', 'running', 'the execution is running'],
        finished:  ['check_circle', 'good', 'finished', 'the execution finished'],
        error:     ['error', 'bad', 'error', 'the execution ended with an error; open it for the details'],
        rejected:  ['block', 'bad', 'rejected', 'the agent refused the inputs; nothing ran'],
        failed:    ['cancel', 'bad', 'failed', 'kodosumi could not be reached or the owner is inactive; nothing ran'],
        unknown:   ['help', 'bad', 'unknown', 'sent, but kodosumi could not tell whether it started'],
        missed:    ['history_toggle_off', 'neutral', 'missed', 'its time passed while it could not start (the timer was down or too late)'],
        skipped:   ['skip_next', 'neutral', 'skipped', 'not started: the run before was still going'],
        buffered:  ['pending', 'waiting', 'buffered', 'due while the run before was still going; starts as soon as it ends (overlap: wait)'],
        timed_out: ['timer_off', 'bad', 'timed out', 'ran longer than the schedule\'s timeout and was ended through kodosumi'],
        replaced:  ['swap_horiz', 'neutral', 'replaced', 'ended through kodosumi so that the next run could start (overlap: replace)'],
    };
    /* how a run came about: icon, label */
    const TRIGGERS = {
        timer: ['schedule', 'scheduled'],
        manual: ['bolt', 'run now'],
        backfill: ['history', 'past period'],
        hook: ['link', 'trigger URL'],
        buffer: ['pending', 'after the one before'],
    };
    const ACTIVE_RUN = new Set(['queued', 'buffered', 'launching', 'unknown', 'launched', 'running']);

    function esc(text) {
        return String(text ?? '').replace(/[&<>"']/g, c => (
            { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
    }

    function fmt(iso, zone, withZone) {
        if (!iso) return '';
        const d = new Date(iso);
        const opts = { weekday: 'short', day: 'numeric', month: 'short',
                       hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
        if (zone) opts.timeZone = zone;
        if (d.getFullYear() !== new Date().getFullYear()) opts.year = 'numeric';
        if (withZone) opts.timeZoneName = 'short';
        return new Intl.DateTimeFormat(undefined, opts).format(d);
    }

    /* a time in a schedule's zone, and in the viewer's where that reads differently */
    function both(iso, zone) {
        const there = fmt(iso, zone, true);
        const mine = fmt(iso, undefined, true);
        if (!zone || there === mine) return `<span class="t-there">${esc(there)}</span>`;
        return `<span class="t-there">${esc(there)}</span><span class="t-yours"><span class="t-sep"> · </span>yours: ${esc(mine)}</span>`;
    }

    function legend() {
        return Object.entries(RUN_STATUS).map(([status, [icon, kind, label, meaning]]) =>
            `<dt><span class="run-status ${kind}"><i aria-hidden="true">${icon}</i><span>${esc(label)}</span></span></dt><dd>${esc(meaning)}</dd>`
        ).join('');
    }

    function relative(iso, now) {
        if (!iso) return '';
        const diff = (new Date(iso).getTime() - (now ?? Date.now())) / 1000;
        const abs = Math.abs(diff);
        const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
        if (abs < 45) return diff >= 0 ? 'in a few seconds' : 'just now';
        if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
        if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour');
        if (abs < 86400 * 30) return rtf.format(Math.round(diff / 86400), 'day');
        if (abs < 86400 * 365) return rtf.format(Math.round(diff / (86400 * 30)), 'month');
        return rtf.format(Math.round(diff / (86400 * 365)), 'year');
    }

    /* <time datetime=ISO data-fmt="local|zone|relative" data-zone=IANA> */
    function localize(root) {
        for (const t of (root || document).querySelectorAll('time[datetime]')) {
            const iso = t.getAttribute('datetime');
            const kind = t.dataset.fmt || 'local';
            if (kind === 'relative') {
                t.textContent = relative(iso);
            } else if (kind === 'zone') {
                t.textContent = fmt(iso, t.dataset.zone, true);
            } else if (kind === 'seconds') {
                t.textContent = new Intl.DateTimeFormat(undefined, { timeZone: t.dataset.zone, hour: '2-digit',
                    minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short' }).format(new Date(iso));
            } else if (kind === 'both') {
                t.innerHTML = both(iso, t.dataset.zone);
            } else {
                t.textContent = fmt(iso, undefined, true);
            }
            t.title = new Date(iso).toString();
        }
        for (const slot of (root || document).querySelectorAll('.run-status-slot[data-status]')) {
            if (slot.dataset.status) slot.outerHTML = runStatus(slot.dataset.status, slot.dataset.fid);
        }
        for (const z of (root || document).querySelectorAll('.viewer-zone')) {
            z.textContent = viewerZone;
        }
    }

    function runStatus(status, fid) {
        const [icon, kind, label] = RUN_STATUS[status] || ['radio_button_unchecked', 'neutral', status || '—'];
        const inner = `<i aria-hidden="true">${icon}</i><span>${esc(label)}</span>`;
        if (fid) {
            return `<a class="run-status ${kind}" href="/admin/status/view/${encodeURIComponent(fid)}"
                       title="Open execution ${esc(fid)}">${inner}</a>`;
        }
        return `<span class="run-status ${kind}">${inner}</span>`;
    }

    async function api(method, url, body) {
        const init = { method, headers: { 'Accept': 'application/json' }, credentials: 'same-origin' };
        if (body !== undefined) {
            init.headers['Content-Type'] = 'application/json';
            init.body = JSON.stringify(body);
        }
        let response;
        try {
            response = await fetch(url, init);
        } catch (err) {
            return { ok: false, status: 0, data: { error: 'network', detail: 'The panel did not answer. Check your connection and try again.' } };
        }
        let data = null;
        const text = await response.text();
        try { data = text ? JSON.parse(text) : null; } catch (err) { data = { detail: text.slice(0, 300) }; }
        if (response.status === 401) {
            data = { error: 'not_authorized', detail: 'Your session has ended. Log in again.' };
        }
        return { ok: response.ok, status: response.status, data };
    }

    function toast(message, isError) {
        let bar = document.getElementById('sched-snackbar');
        if (!bar) {
            bar = document.createElement('div');
            bar.id = 'sched-snackbar';
            bar.className = 'snackbar';
            bar.setAttribute('role', 'status');
            bar.setAttribute('aria-live', 'polite');
            document.body.appendChild(bar);
        }
        bar.classList.toggle('error', !!isError);
        bar.textContent = message;
        bar.classList.add('active');
        clearTimeout(bar._timer);
        bar._timer = setTimeout(() => bar.classList.remove('active'), 4000);
        bar.onclick = () => bar.classList.remove('active');
    }

    /* a message to show after the next page load (pause, resume, delete, save) */
    function flash(message) { sessionStorage.setItem('sched-flash', message); }
    function showFlash() {
        const message = sessionStorage.getItem('sched-flash');
        if (message) {
            sessionStorage.removeItem('sched-flash');
            toast(message);
        }
    }

    function confirmDialog(title, message, confirmText) {
        return new Promise(resolve => {
            const dialog = document.getElementById('sched-confirm');
            dialog.querySelector('.dialog-title').textContent = title;
            dialog.querySelector('.dialog-message').textContent = message;
            const ok = dialog.querySelector('.dialog-ok');
            const cancel = dialog.querySelector('.dialog-cancel');
            ok.textContent = confirmText;
            const done = (value) => {
                ok.onclick = cancel.onclick = dialog.onclose = null;
                if (dialog.open) dialog.close();
                resolve(value);
            };
            ok.onclick = () => done(true);
            cancel.onclick = () => done(false);
            dialog.onclose = () => done(false);
            dialog.showModal();
            cancel.focus();
        });
    }

    return { viewerZone, esc, fmt, both, legend, relative, localize, runStatus, api, toast, flash,
             showFlash, confirmDialog, ACTIVE_RUN, TRIGGERS };
})();

document.addEventListener('DOMContentLoaded', () => {
    SCHED.localize();
    SCHED.showFlash();
    const nav = document.querySelectorAll('a[data-nav="schedules"]');
    nav.forEach(a => a.classList.add('active'));
});

/* "Run for a past period" and the trigger URL on the detail page (_detail_tools.html).
   Included into a Jinja template: never two opening braces in a row here. */
function toolError(id, message) {
    const slot = document.getElementById('err-' + id);
    if (slot) slot.textContent = message || '';
    const box = document.getElementById('field-' + id);
    if (box) box.classList.toggle('invalid', !!message);
}

async function copyText(id, button) {
    const box = document.getElementById(id);
    let done = false;
    try {
        await navigator.clipboard.writeText(box.value);
        done = true;
    } catch (err) {
        box.select();
        done = document.execCommand('copy');
    }
    SCHED.toast(done ? 'Copied.' : 'Select it and copy it yourself.', !done);
    if (done) button.querySelector('i').textContent = 'check';
}

function curlExample(url, token) {
    /* the token goes in the Authorization header unless the URL already carries it */
    const lines = [`curl -X POST '${url}'`];
    if (!url.includes(token)) lines.push(`  -H 'Authorization: Bearer ${token}'`);
    if (SCHEDULE.hook_inputs) {
        const name = Object.keys(SCHEDULE.inputs || {})[0] || 'name';
        lines.push(`  -H 'Content-Type: application/json' -d '${JSON.stringify({ inputs: { [name]: 'value' } })}'`);
    }
    return lines.join(' \\\n');
}

function setHookState(isSet) {
    const state = document.getElementById('hook-state');
    state.dataset.hook = isSet ? 'set' : 'none';
    state.textContent = isSet ? 'A trigger URL is set. Its token was shown once, when it was made: replace it if it is lost.'
                              : 'No trigger URL yet.';
    document.querySelector('#hook-make span').textContent = isSet ? 'Replace' : 'Make a trigger URL';
    document.getElementById('hook-revoke').hidden = !isSet;
    const fact = document.getElementById('hook-fact');
    if (fact) fact.textContent = (isSet ? 'set' : 'none') + (SCHEDULE.hook_inputs ? ' (a POST to it may send inputs)' : '');
    SCHEDULE.hook = isSet;
}

function bindTools() {
    const backfill = document.getElementById('backfill-button');
    if (backfill) backfill.addEventListener('click', async () => {
        const start = document.getElementById('backfill-start').value;
        const end = document.getElementById('backfill-end').value;
        const result = document.getElementById('backfill-result');
        toolError('backfill-start'); toolError('backfill-end');
        result.textContent = '';
        if (!start) toolError('backfill-start', 'Pick where the period starts.');
        if (!end) toolError('backfill-end', 'Pick where the period ends.');
        if (!start || !end) return;
        const sure = await SCHED.confirmDialog('Run a past period?',
            `Every slot from ${start.replace('T', ' ')} until ${end.replace('T', ' ')} (${SCHEDULE.timezone}) runs now.`, 'Run them');
        if (!sure) return;
        backfill.disabled = true;
        const res = await SCHED.api('POST', `/schedule/${SCHEDULE.id}/backfill`, { start, end });
        backfill.disabled = false;
        if (res.ok) {
            const { queued, first, last } = res.data;
            result.className = 'small-text';
            result.textContent = `Queued ${queued} run${queued === 1 ? '' : 's'}, slots ${SCHED.fmt(first, SCHEDULE.timezone, true)} to ${SCHED.fmt(last, SCHEDULE.timezone, true)}.`;
            runsOffset = 0;
            loadRuns();
            return;
        }
        const field = res.data?.field;
        const message = res.data?.detail || `could not run the period (HTTP ${res.status})`;
        if (field === 'start' || field === 'end') {
            toolError('backfill-' + field, message);
        } else {
            result.className = 'small-text error-text';
            result.textContent = message;
        }
    });

    const make = document.getElementById('hook-make');
    if (make) make.addEventListener('click', async () => {
        toolError('hook');
        if (SCHEDULE.hook) {
            const sure = await SCHED.confirmDialog('Replace the trigger URL?',
                'The current URL stops working at once; whoever uses it needs the new one.', 'Replace');
            if (!sure) return;
        }
        make.disabled = true;
        const res = await SCHED.api('POST', `/schedule/${SCHEDULE.id}/hook`);
        make.disabled = false;
        if (!res.ok) {
            toolError('hook', res.data?.detail || `could not make a trigger URL (HTTP ${res.status})`);
            return;
        }
        const url = new URL(res.data.url, window.location.origin).href;
        document.getElementById('hook-url').value = url;
        document.getElementById('hook-token').value = res.data.token;
        document.getElementById('hook-curl').value = curlExample(url, res.data.token);
        for (const icon of document.querySelectorAll('#hook-made .copy i')) icon.textContent = 'content_copy';
        document.getElementById('hook-made').hidden = false;
        setHookState(true);
        document.getElementById('hook-state').textContent = 'A trigger URL is set: copy the URL and token below.';
    });

    const revoke = document.getElementById('hook-revoke');
    if (revoke) revoke.addEventListener('click', async () => {
        toolError('hook');
        const sure = await SCHED.confirmDialog('Revoke the trigger URL?',
            'A POST to it is answered 404 from now on.', 'Revoke');
        if (!sure) return;
        revoke.disabled = true;
        const res = await SCHED.api('DELETE', `/schedule/${SCHEDULE.id}/hook`);
        revoke.disabled = false;
        if (!res.ok) {
            toolError('hook', res.data?.detail || `could not revoke it (HTTP ${res.status})`);
            return;
        }
        document.getElementById('hook-made').hidden = true;
        setHookState(false);
        SCHED.toast('Revoked: the trigger URL no longer runs anything.');
    });

    for (const button of document.querySelectorAll('#hook-made .copy')) {
        button.addEventListener('click', () => copyText(button.dataset.copy, button));
    }
    for (const id of ['backfill-start', 'backfill-end']) {
        const input = document.getElementById(id);
        if (input) input.addEventListener('input', () => toolError(id));
    }
}

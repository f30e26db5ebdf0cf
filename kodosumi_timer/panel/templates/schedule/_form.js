/* The schedule form (new and edit). Everything goes through the JSON API:
   GET /flow and the flow's own form, POST /schedule/preview, POST or PUT /schedule/.
   Included into a Jinja template: never two opening braces in a row here. */
const $ = (id) => document.getElementById(id);
const FIELD_BOXES = {
    flow_url: 'field-flow_url', title: 'field-title', schedule_type: 'field-schedule_type',
    run_at: 'field-run_at', cron_expression: 'field-cron_expression', timezone: 'field-timezone',
    end_at: 'field-end_at', max_runs: 'field-max_runs', catchup: 'field-catchup',
    overlap: 'field-overlap', weekdays: 'field-weekdays', inputs: 'field-inputs-json',
    catchup_window: 'field-catchup_window', every: 'field-every', anchor: 'field-anchor',
    exclude_dates: 'field-exclude_dates', dst_policy: 'field-dst_policy', jitter: 'field-jitter',
    timeout: 'field-timeout', pause_after_failures: 'field-pause_after_failures',
    hook_inputs: 'field-hook_inputs', text: 'field-text',
};
const FIELD_FOCUS = {
    flow_url: 'flow', title: 'title', run_at: 'run-date', cron_expression: 'cron',
    timezone: 'timezone', end_at: 'end-at', max_runs: 'max-runs', schedule_type: 'kind-once',
    inputs: 'inputs-json', catchup_window: 'catchup-window', every: 'every-count', anchor: 'anchor',
    exclude_dates: 'exclude-date', dst_policy: 'dst-gap', jitter: 'jitter', timeout: 'timeout',
    pause_after_failures: 'pause-after', hook_inputs: 'hook-inputs', text: 'describe-text',
};
const ADVANCED = new Set(['end_at', 'max_runs', 'catchup', 'overlap', 'catchup_window', 'exclude_dates',
                          'dst_policy', 'jitter', 'timeout', 'pause_after_failures', 'hook_inputs']);
/* the fields the live preview reports on */
const PREVIEWED = ['run_at', 'cron_expression', 'timezone', 'every', 'anchor', 'exclude_dates', 'dst_policy', 'jitter'];

let flows = [];
let elements = [];          /* the chosen agent's form elements */
let inputsView = 'form';
let extraInputs = {};       /* saved inputs the agent's form does not show (kept as they are) */
let previewTimer = null;
let previewSeq = 0;
let timingAtLoad = null;
let excludeDates = [];      /* the dates left out, sorted ISO strings */
let describeTimer = null;
let describeSeq = 0;
let describedRule = null;   /* the rule the "Describe when" text was read as */
let flowAtLoad = null;

/* ------------------------------------------------------------------ errors */

function clearErrors(keys) {
    const all = keys || [...Object.keys(FIELD_BOXES), '_global'];
    for (const key of all) {
        if (key === '_global') {
            $('form-error').hidden = true;
            continue;
        }
        const slot = $('err-' + key);
        if (slot) slot.textContent = '';
        const box = $(FIELD_BOXES[key]);
        if (box) box.classList.remove('invalid', 'invalid-box');
    }
    if (!keys) {
        for (const slot of document.querySelectorAll('#agent-form .fld-error')) slot.textContent = '';
        for (const box of document.querySelectorAll('#agent-form .invalid')) box.classList.remove('invalid');
    }
}

function showInputError(name, message, focus) {
    /* the API names an agent's field as inputs.<name>: show it at that field */
    const slot = document.getElementById('err-in-' + name);
    const input = document.getElementById('in-' + name);
    if (inputsView !== 'form' || !slot || !input) return false;
    slot.textContent = message;
    const box = input.closest('.field');
    if (box) box.classList.add('invalid');
    if (focus) {
        input.scrollIntoView({ block: 'center' });
        input.focus({ preventScroll: true });
    }
    return true;
}

function showError(field, message, focus) {
    let key = field || '';
    if (key.startsWith('inputs.') && showInputError(key.slice(7), message, focus)) return;
    if (key.startsWith('inputs')) key = 'inputs';
    /* "dst_policy.gap", "exclude_dates.2": shown at the option as a whole */
    for (const whole of ['dst_policy', 'exclude_dates']) if (key.startsWith(whole + '.')) key = whole;
    if (key === 'run_at') setKind('once');
    if (key === 'cron_expression') setKind('cron');
    if (key === 'every' || key === 'anchor') setKind('interval');
    if (ADVANCED.has(key)) $('advanced').open = true;
    const slot = $('err-' + key);
    if (!slot) {
        $('form-error-text').textContent = message;
        $('form-error').hidden = false;
        if (focus) $('form-error').scrollIntoView({ block: 'center' });
        return;
    }
    slot.textContent = message;
    /* the agent's own fields carry their messages; the JSON editor is marked as a whole */
    const box = key === 'inputs' && inputsView !== 'json' ? null : $(FIELD_BOXES[key]);
    if (box) box.classList.add(box.classList.contains('field') ? 'invalid' : 'invalid-box');
    if (key === 'run_at') $('field-run_time').classList.add('invalid');
    if (focus) {
        let target = $(FIELD_FOCUS[key]) || box;
        if (!target || target.offsetParent === null) target = slot;
        if (target) {
            target.scrollIntoView({ block: 'center' });
            if (target.focus) target.focus({ preventScroll: true });
        }
    }
}

/* ------------------------------------------------------------------ time zones */

function zoneOffset(zone, date) {
    try {
        const part = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' })
            .formatToParts(date || new Date()).find(p => p.type === 'timeZoneName');
        const value = part ? part.value.replace('GMT', '') : '';
        return 'UTC' + (value || '+00:00');
    } catch (err) {
        return '';
    }
}

function fillZones(selected) {
    let zones = [];
    try { zones = Intl.supportedValuesOf('timeZone'); } catch (err) { zones = []; }
    zones = [...new Set(['UTC', ...zones, SCHED.viewerZone, selected].filter(Boolean))].sort();
    const select = $('timezone');
    select.innerHTML = zones.map(z => `<option value="${SCHED.esc(z)}">${SCHED.esc(z.replaceAll('_', ' '))}</option>`).join('');
    select.value = selected || SCHED.viewerZone;
}

/* wall time (date, time) of an instant in a zone */
function wallTime(iso, zone) {
    const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', {
        timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    }).formatToParts(new Date(iso)).map(p => [p.type, p.value]));
    return { date: `${parts.year}-${parts.month}-${parts.day}`, time: `${parts.hour}:${parts.minute}`,
             seconds: parts.second };
}

/* a datetime-local value for an instant: wall time in the zone, seconds only when set */
function localInput(iso, zone) {
    const wall = wallTime(iso, zone);
    return `${wall.date}T${wall.time}` + (wall.seconds !== '00' ? `:${wall.seconds}` : '');
}

/* ------------------------------------------------------------------ when: once / cron, presets */

function kind() { return document.querySelector('input[name=kind]:checked').value; }
function preset() { return document.querySelector('input[name=preset]:checked').value; }

function setKind(value) {
    $('kind-' + value).checked = true;
    $('once-box').hidden = value !== 'once';
    $('cron-box').hidden = value !== 'cron';
    $('interval-box').hidden = value !== 'interval';
    for (const el of document.querySelectorAll('.cron-only')) el.hidden = value !== 'cron';
    for (const el of document.querySelectorAll('.repeat-only')) el.hidden = value === 'once';
}

/* ------------------------------------------------------------------ every … (interval) */

/* "90m" (as the API answers) -> [90, 'm']; seconds that no unit divides stay seconds */
function splitEvery(text) {
    const match = /^\s*(\d+)\s*([smhd]?)\s*$/i.exec(String(text ?? ''));
    if (!match) return null;
    return [parseInt(match[1], 10), (match[2] || 's').toLowerCase()];
}

function setEvery(text) {
    const parts = splitEvery(text);
    if (!parts) return;
    $('every-count').value = parts[0];
    $('every-unit').value = parts[1];
}

function everyText() {
    const count = $('every-count').value.trim();
    return count ? `${count}${$('every-unit').value}` : '';
}

/* ------------------------------------------------------------------ dates left out */

function renderDates() {
    $('exclude-list').innerHTML = excludeDates.map(d =>
        `<li data-date="${SCHED.esc(d)}">${SCHED.esc(d)}<button type="button" class="transparent circle" aria-label="Remove ${SCHED.esc(d)}" title="Remove"><i>close</i></button></li>`).join('');
}

function addDate() {
    const value = $('exclude-date').value;
    clearErrors(['exclude_dates']);
    if (!value) {
        showError('exclude_dates', 'Pick a date first.');
        return;
    }
    if (!excludeDates.includes(value)) excludeDates = [...excludeDates, value].sort();
    $('exclude-date').value = '';
    renderDates();
    schedulePreview();
}

function dstPolicy() {
    const gap = $('dst-gap').value || null;
    const repeat = $('dst-repeat').value || null;
    return gap || repeat ? { gap, repeat } : null;
}

function wholeOrNull(id, key, min, message) {
    /* a whole number from an optional field: null when empty, undefined (error shown) when wrong */
    const text = $(id).value.trim();
    if (!text) return null;
    const value = Number(text);
    if (!(Number.isInteger(value) && value >= min)) {
        showError(key, message);
        return undefined;
    }
    return value;
}

function setPreset(value) {
    document.querySelector(`input[name=preset][value=${value}]`).checked = true;
    for (const box of document.querySelectorAll('.preset')) box.hidden = box.dataset.preset !== value;
}

function hhmm(value) {
    const [h, m] = (value || '').split(':').map(n => parseInt(n, 10));
    return Number.isInteger(h) && Number.isInteger(m) ? [h, m] : null;
}

function compressDays(days) {
    /* [1,2,3,5] -> "1-3,5" (Monday=1 … Sunday=7) */
    const out = [];
    let i = 0;
    while (i < days.length) {
        let j = i;
        while (j + 1 < days.length && days[j + 1] === days[j] + 1) j++;
        out.push(j - i >= 2 ? `${days[i]}-${days[j]}` : days.slice(i, j + 1).join(','));
        i = j + 1;
    }
    return out.join(',');
}

/* the cron expression the visible preset describes, or null (error shown) */
function cronFromPreset() {
    const p = preset();
    clearErrors(['weekdays']);
    if (p === 'custom') return null;
    if (p === 'hourly') {
        const minute = parseInt($('hourly-minute').value, 10);
        return Number.isInteger(minute) ? `${minute} * * * *` : null;
    }
    const time = hhmm($(`${p}-time`).value);
    if (!time) return null;
    const [h, m] = time;
    if (p === 'daily') return `${m} ${h} * * *`;
    if (p === 'weekly') {
        const days = [...document.querySelectorAll('input[name=weekday]:checked')].map(d => parseInt(d.value, 10));
        if (!days.length) {
            showError('weekdays', 'Pick at least one day.');
            return null;
        }
        return `${m} ${h} * * ${days.length === 7 ? '*' : compressDays(days)}`;
    }
    return `${m} ${h} ${$('monthly-day').value} * *`;
}

function expandDays(field) {
    const days = new Set();
    for (const part of field.split(',')) {
        const range = part.split('-').map(n => parseInt(n, 10));
        if (range.some(n => !Number.isInteger(n) || n < 0 || n > 7)) return null;
        const [a, b] = range.length === 2 ? range : [range[0], range[0]];
        if (range.length > 2 || a > b) return null;
        for (let d = a; d <= b; d++) days.add(d === 0 ? 7 : d);
    }
    return days;
}

const pad = (n) => String(n).padStart(2, '0');

/* show the preset that writes this expression (custom when none does) */
function presetFromCron(expression) {
    const f = expression.trim().split(/\s+/);
    const num = (v, max) => /^\d{1,2}$/.test(v) && parseInt(v, 10) <= max;
    if (f.length === 5 && num(f[0], 59)) {
        const minute = parseInt(f[0], 10);
        if (f[1] === '*' && f[2] === '*' && f[3] === '*' && f[4] === '*') {
            $('hourly-minute').value = minute;
            return setPreset('hourly');
        }
        if (num(f[1], 23) && f[3] === '*') {
            const time = `${pad(f[1])}:${pad(minute)}`;
            if (f[2] === '*' && f[4] === '*') {
                $('daily-time').value = time;
                return setPreset('daily');
            }
            if (f[2] === '*') {
                const days = expandDays(f[4]);
                if (days && days.size) {
                    for (const box of document.querySelectorAll('input[name=weekday]')) {
                        box.checked = days.has(parseInt(box.value, 10));
                    }
                    $('weekly-time').value = time;
                    return setPreset('weekly');
                }
            }
            if (f[4] === '*' && ((num(f[2], 31) && parseInt(f[2], 10) >= 1) || f[2] === 'L')) {
                $('monthly-day').value = f[2] === 'L' ? 'L' : String(parseInt(f[2], 10));
                $('monthly-time').value = time;
                return setPreset('monthly');
            }
        }
        if (f[1] === '*' && f[2] === '*' && f[3] === '*' && f[4] === '*') return setPreset('hourly');
    }
    setPreset('custom');
}

function onPresetInput() {
    const expression = cronFromPreset();
    if (expression) {
        $('cron').value = expression;
        schedulePreview();
    }
}

/* ------------------------------------------------------------------ preview */

function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(runPreview, 250);
}

function previewRequest() {
    const timezone = $('timezone').value;
    if (kind() === 'once') {
        const date = $('run-date').value;
        const time = $('run-time').value;
        return date && time ? { run_at: `${date}T${time}`, timezone, count: 1 } : null;
    }
    const body = { timezone, count: 5, exclude_dates: excludeDates };
    if (kind() === 'interval') {
        body.every = everyText();
        if (!body.every) return null;
        if ($('anchor').value) body.anchor = $('anchor').value;
    } else {
        body.cron_expression = $('cron').value.trim();
        if (!body.cron_expression) return null;
        body.dst_policy = dstPolicy();
    }
    const jitter = Number($('jitter').value.trim());
    if (Number.isInteger(jitter) && jitter > 0) body.jitter = jitter;
    /* the jitter offsets depend on the schedule: an existing one shows its own */
    if (EXISTING) body.schedule_id = EXISTING.id;
    return body;
}

function previewTime(t, zone, previous, sameZone, now) {
    const offset = 'UTC' + (t.local.endsWith('Z') ? '+00:00' : t.local.slice(-6));
    const shift = offset !== previous
        ? `<div class="dst-note"><i aria-hidden="true">schedule</i>clock change: ${previous} → ${offset}</div>` : '';
    const note = t.dst_note ? `<div class="dst-note"><i aria-hidden="true">wb_twilight</i>${SCHED.esc(t.dst_note)}</div>` : '';
    const yours = sameZone ? '' : `<div class="yours">yours: ${SCHED.esc(SCHED.fmt(t.utc, undefined, true))}</div>`;
    const past = new Date(t.utc).getTime() < now ? '<div class="past">this time has passed</div>' : '';
    const skipped = t.skipped ? `<div class="skip-note">skipped: ${SCHED.esc(t.skipped)}</div>` : '';
    const sent = t.send_at && !t.skipped
        ? `<div class="send-note">sent at ${SCHED.esc(new Intl.DateTimeFormat(undefined, { timeZone: zone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(t.send_at)))} (jitter)</div>` : '';
    const html = `<li data-utc="${SCHED.esc(t.utc)}"${t.skipped ? ` class="skipped" data-skipped="${SCHED.esc(t.skipped)}"` : ''}><b>${SCHED.esc(SCHED.fmt(t.utc, zone, true))}</b>
            <span class="muted small-text">${SCHED.esc(SCHED.relative(t.utc))}</span>${skipped}${sent}${yours}${note}${shift}${past}</li>`;
    return [html, offset];
}

async function runPreview() {
    const body = previewRequest();
    const seq = ++previewSeq;
    const desc = $('preview-desc');
    $('preview-effects').hidden = true;
    if (!body) {
        desc.className = 'preview-desc muted';
        desc.textContent = { once: 'Pick a date and a time.', cron: 'Enter a cron expression.',
                             interval: 'Enter how often.' }[kind()];
        $('preview-times').innerHTML = '';
        $('preview-zone').textContent = '';
        return;
    }
    $('preview-busy').hidden = false;
    const res = await SCHED.api('POST', '/schedule/preview', body);
    if (seq !== previewSeq) return;  /* a newer preview is on its way */
    $('preview-busy').hidden = true;
    clearErrors(PREVIEWED);
    if (!res.ok) {
        desc.className = 'preview-desc error-text';
        desc.textContent = res.data?.detail || 'This rule cannot be previewed.';
        $('preview-times').innerHTML = '';
        $('preview-zone').textContent = '';
        if (res.data?.field) showError(res.data.field, res.data.detail);
        return;
    }
    const data = res.data;
    const zone = data.timezone;
    desc.className = 'preview-desc';
    desc.textContent = data.description;
    $('preview-zone').textContent = `in ${zone.replaceAll('_', ' ')} (${zoneOffset(zone)})` +
        (kind() !== 'once' ? ` · next ${data.times.length} slots:` : '');
    let previous = zoneOffset(zone);
    const sameZone = zoneOffset(zone) === zoneOffset(SCHED.viewerZone) && zone === SCHED.viewerZone;
    const now = Date.now();
    $('preview-times').innerHTML = data.times.map(t => {
        const [html, offset] = previewTime(t, zone, previous, sameZone, now);
        previous = offset;
        return html;
    }).join('');
    const effects = data.dst_effects || [];
    $('preview-effects-list').innerHTML = effects.map(e => `<li>${SCHED.esc(e)}</li>`).join('');
    $('preview-effects').hidden = !effects.length;
}

/* ------------------------------------------------------------------ describe when (words) */

function scheduleDescribe() {
    clearTimeout(describeTimer);
    describedRule = null;
    $('describe-use').disabled = true;
    describeTimer = setTimeout(runDescribe, 400);
}

function ruleSummary(rule, zone) {
    if (rule.schedule_type === 'cron') return `cron <code class="cron">${SCHED.esc(rule.cron_expression)}</code>`;
    if (rule.schedule_type === 'once') return `once, ${SCHED.esc(SCHED.fmt(rule.run_at, zone, true))}`;
    return `every ${SCHED.esc(rule.every)}` + (rule.anchor ? ` from ${SCHED.esc(SCHED.fmt(rule.anchor, zone, true))}` : '');
}

async function runDescribe() {
    const text = $('describe-text').value.trim();
    const seq = ++describeSeq;
    const answer = $('describe-answer');
    clearErrors(['text']);
    if (!text) {
        answer.innerHTML = '';
        return;
    }
    const zone = $('timezone').value;
    const res = await SCHED.api('POST', '/schedule/preview', { text, timezone: zone, count: 1 });
    if (seq !== describeSeq) return;
    if (!res.ok) {
        answer.innerHTML = '';
        const detail = res.data?.detail || `This could not be read (HTTP ${res.status}).`;
        showError('text', detail);
        /* the API names the nearest form it knows: offer it */
        const nearest = /the nearest form I know: "([^"]+)"/.exec(detail);
        if (nearest) {
            const button = document.createElement('button');
            button.type = 'button';
            button.className = 'border small';
            button.id = 'describe-try';
            button.textContent = `Try “${nearest[1]}”`;
            button.addEventListener('click', () => { $('describe-text').value = nearest[1]; runDescribe(); });
            $('err-text').append(document.createElement('br'), button);
        }
        return;
    }
    describedRule = res.data.rule;
    answer.innerHTML = `<b id="describe-desc">${SCHED.esc(res.data.description)}</b>` +
        (describedRule ? ` <span class="muted">(${ruleSummary(describedRule, zone)})</span>` : '');
    $('describe-use').disabled = !describedRule;
}

function useDescribed() {
    const rule = describedRule;
    if (!rule) return;
    const zone = $('timezone').value;
    clearErrors(PREVIEWED);
    setKind(rule.schedule_type);
    if (rule.schedule_type === 'cron') {
        $('cron').value = rule.cron_expression;
        presetFromCron(rule.cron_expression);
    } else if (rule.schedule_type === 'once') {
        const wall = wallTime(rule.run_at, zone);
        $('run-date').value = wall.date;
        $('run-time').value = wall.time;
    } else {
        setEvery(rule.every);
        $('anchor').value = rule.anchor ? localInput(rule.anchor, zone) : '';
    }
    $('describe-answer').insertAdjacentHTML('beforeend', ' <span class="muted" id="describe-used">· filled in below</span>');
    $('describe-use').disabled = true;
    describedRule = null;
    schedulePreview();
}

/* ------------------------------------------------------------------ agents and their forms */

async function loadFlows(selected) {
    const select = $('flow');
    let offset = null;
    flows = [];
    for (let page = 0; page < 20; page++) {
        const res = await SCHED.api('GET', '/flow?pp=100' + (offset ? `&offset=${encodeURIComponent(offset)}` : ''));
        if (!res.ok) {
            showError('flow_url', res.data?.detail || 'The agents could not be loaded.');
            break;
        }
        flows.push(...(res.data.items || []).filter(f => (f.method || 'GET').toUpperCase() === 'GET'));
        offset = res.data.offset;
        if (!offset) break;
    }
    flows.sort((a, b) => (a.summary || a.url).localeCompare(b.summary || b.url));
    const options = ['<option value="">Choose an agent …</option>'];
    for (const f of flows) {
        options.push(`<option value="${SCHED.esc(f.url)}">${SCHED.esc(f.summary || f.url)}</option>`);
    }
    if (selected && !flows.some(f => f.url === selected)) {
        const name = EXISTING && EXISTING.flow_url === selected ? EXISTING.expose_name : selected;
        options.push(`<option value="${SCHED.esc(selected)}">${SCHED.esc(name)} (not available now)</option>`);
    }
    select.innerHTML = options.join('');
    select.value = selected || '';
    describeFlow();
}

function describeFlow() {
    const flow = flows.find(f => f.url === $('flow').value);
    $('flow-description').textContent = flow ? (flow.description || '') : '';
}

async function loadAgentForm(url, values) {
    const holder = $('agent-form');
    elements = [];
    if (!url) {
        holder.innerHTML = '';
        $('inputs-placeholder').hidden = false;
        $('inputs-placeholder').textContent = 'Choose an agent to fill in its inputs.';
        return;
    }
    $('inputs-placeholder').hidden = false;
    $('inputs-placeholder').textContent = 'loading the agent’s form …';
    const res = await SCHED.api('GET', '/admin/schedule/agent-form?flow=' + encodeURIComponent(url));
    if (!res.ok || !Array.isArray(res.data?.elements)) {
        holder.innerHTML = '';
        $('inputs-placeholder').textContent = (res.data?.detail ? res.data.detail + '. ' : '')
            + 'Fill in the inputs as JSON; they are checked when the agent is back.';
        setView('json', values);
        return;
    }
    elements = res.data.elements;
    const names = new Set(elements.filter(e => e.name).map(e => e.name));
    extraInputs = Object.fromEntries(Object.entries(values || {}).filter(([k]) => !names.has(k)));
    holder.innerHTML = elements.map(e => renderElement(e, values || {})).join('');
    $('inputs-placeholder').hidden = elements.some(e => e.name);
    if (!elements.some(e => e.name)) {
        $('inputs-placeholder').hidden = false;
        $('inputs-placeholder').textContent = 'This agent takes no inputs.';
    }
    bindAgentInputs(holder);
    if (inputsView === 'json') $('inputs-json').value = JSON.stringify(collectFormInputs(), null, 2);
}

function clearInputError(input) {
    const wrap = input.closest('.agent-field');
    if (!wrap) return;
    wrap.querySelector('.fld-error').textContent = '';
    const box = wrap.querySelector('.field');
    if (box) box.classList.remove('invalid');
}

const INPUT_TYPES = new Set(['text', 'number', 'password', 'date', 'time', 'datetime-local']);
const RANGE_ATTRS = {
    number: [['min_value', 'min'], ['max_value', 'max'], ['step', 'step']],
    date: [['min_date', 'min'], ['max_date', 'max']],
    time: [['min_time', 'min'], ['max_time', 'max'], ['step', 'step']],
    'datetime-local': [['min_datetime', 'min'], ['max_datetime', 'max'], ['step', 'step']],
    password: [['min_length', 'minlength'], ['max_length', 'maxlength']],
    text: [['size', 'size'], ['pattern', 'pattern']],
};

function renderElement(e, values) {
    const esc = SCHED.esc;
    const id = e.name ? `in-${e.name}` : '';
    const label = (text) => `<label class="fld-label" for="${esc(id)}">${esc(text || e.name)}${e.required ? ' <span class="req" aria-hidden="true">*</span>' : ''}</label>`;
    const given = e.name && Object.prototype.hasOwnProperty.call(values, e.name);
    const value = given ? values[e.name] : e.value;
    const wrap = (inner) => `<div class="agent-field" data-name="${esc(e.name)}">${inner}<div class="fld-error" id="err-in-${esc(e.name)}"></div></div>`;
    const common = `id="${esc(id)}" name="${esc(e.name)}" form="inputs-form" aria-describedby="err-in-${esc(e.name)}"${e.required ? ' required' : ''}`;
    switch (e.type) {
    case 'markdown':
        /* rendered by the panel with kodosumi's own Markdown renderer */
        return `<div class="agent-md">${e.html || ''}</div>`;
    case 'html':
        return `<div class="agent-html">${e.text || ''}</div>`;
    case 'break':
        return '<div class="space"></div>';
    case 'hr':
        return '<hr class="medium">';
    case 'textarea': {
        const attrs = [e.rows ? `rows="${esc(e.rows)}"` : '', e.cols ? `cols="${esc(e.cols)}"` : '',
                       e.max_length ? `maxlength="${esc(e.max_length)}"` : '',
                       e.placeholder ? `placeholder="${esc(e.placeholder)}"` : ''].join(' ');
        return wrap(`${label(e.label)}<div class="field textarea border fill extra"><textarea ${common} ${attrs}>${esc(value ?? '')}</textarea></div>`);
    }
    case 'boolean': {
        const checked = given ? (value === 'on' || value === true) : !!value;
        return wrap(`${e.label ? `<div class="fld-label">${esc(e.label)}</div>` : ''}
            <label class="checkbox large"><input type="checkbox" ${common}${checked ? ' checked' : ''}><span>${esc(e.option || 'on')}</span></label>`);
    }
    case 'select': {
        const options = (e.option || []).map(o => {
            const selected = value != null && value !== '' ? o.name === String(value) : !!o.value;
            return `<option value="${esc(o.name)}"${selected ? ' selected' : ''}>${esc(o.label ?? o.name)}</option>`;
        }).join('');
        return wrap(`${label(e.label)}<div class="field border fill suffix"><select ${common}>${options}</select><i>arrow_drop_down</i></div>`);
    }
    case 'file':
        return wrap(`${label(e.label)}<p class="file-note"><i class="tiny">attach_file</i> File uploads cannot be scheduled: a schedule keeps no files. Give the agent another way to find its data, or run it from its own form.</p>`);
    case 'errors': case 'submit': case 'cancel': case 'action': case 'option':
        return '';
    default: {
        if (!INPUT_TYPES.has(e.type)) {
            return e.name ? wrap(`${label(e.label)}<div class="field border fill"><input type="text" ${common} value="${esc(value ?? '')}"></div>`) : '';
        }
        const extra = (RANGE_ATTRS[e.type] || []).filter(([key]) => e[key] !== null && e[key] !== undefined && e[key] !== '')
            .map(([key, attr]) => `${attr}="${esc(e[key])}"`).join(' ');
        const placeholder = e.placeholder ? `placeholder="${esc(e.placeholder)}"` : '';
        return wrap(`${label(e.label)}<div class="field border fill"><input type="${esc(e.type)}" ${common} ${extra} ${placeholder} value="${esc(value ?? '')}"></div>`);
    }
    }
}

/* exactly what kodosumi's own form posts: every named field as a string, a checked box as "on",
   an unchecked box left out */
function collectFormInputs() {
    const values = { ...extraInputs };
    for (const [key, value] of new FormData($('inputs-form'))) {
        if (typeof value === 'string') values[key] = value;
    }
    return values;
}

function collectInputs() {
    if (inputsView === 'json') {
        let parsed;
        try {
            parsed = JSON.parse($('inputs-json').value || '{}');
        } catch (err) {
            showError('inputs', `The inputs are not valid JSON: ${err.message}`, true);
            return null;
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
            showError('inputs', 'The inputs must be a JSON object, like {"message": "hello"}.', true);
            return null;
        }
        return parsed;
    }
    let first = null;
    for (const input of document.querySelectorAll('#agent-form [name]')) {
        if (!input.checkValidity()) {
            const wrap = input.closest('.agent-field');
            wrap.querySelector('.fld-error').textContent = input.validationMessage;
            const box = wrap.querySelector('.field');
            if (box) box.classList.add('invalid');
            first = first || input;
        }
    }
    if (first) {
        showError('inputs', 'Some inputs need your attention.');
        first.scrollIntoView({ block: 'center' });
        first.focus({ preventScroll: true });
        return null;
    }
    return collectFormInputs();
}

function setView(view, values) {
    if (view === inputsView && values === undefined) return;
    clearErrors(['inputs']);
    if (view === 'json') {
        const current = values !== undefined ? values : collectFormInputs();
        $('inputs-json').value = JSON.stringify(current, null, 2);
    } else {
        let parsed;
        try {
            parsed = JSON.parse($('inputs-json').value || '{}');
            if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        } catch (err) {
            showError('inputs', 'Fix the JSON first: the form view needs a JSON object.', true);
            return;
        }
        loadAgentFormValues(parsed);
    }
    inputsView = view;
    $('inputs-form-view').hidden = view !== 'form';
    $('inputs-json-view').hidden = view !== 'json';
    for (const [id, v] of [['view-form', 'form'], ['view-json', 'json']]) {
        $(id).classList.toggle('fill', v === view);
        $(id).setAttribute('aria-selected', String(v === view));
    }
}

function loadAgentFormValues(values) {
    /* re-render the current agent's form with these values (no reload of the elements) */
    const names = new Set(elements.filter(e => e.name).map(e => e.name));
    extraInputs = Object.fromEntries(Object.entries(values).filter(([k]) => !names.has(k)));
    $('agent-form').innerHTML = elements.map(e => renderElement(e, values)).join('');
    bindAgentInputs($('agent-form'));
}

function bindAgentInputs(holder) {
    for (const input of holder.querySelectorAll('input, select, textarea')) {
        input.addEventListener('input', () => clearInputError(input));
        /* the agent's fields belong to their own (hidden) form: Enter submits the schedule,
           as in every other field of this page */
        if (input.tagName === 'INPUT') {
            input.addEventListener('keydown', (event) => {
                if (event.key === 'Enter' && !event.isComposing) {
                    event.preventDefault();
                    $('schedule-form').requestSubmit();
                }
            });
        }
    }
}

/* ------------------------------------------------------------------ submit */

function timingSnapshot() {
    return JSON.stringify({
        kind: kind(), date: $('run-date').value, time: $('run-time').value, cron: $('cron').value.trim(),
        zone: $('timezone').value, end: $('end-at').value, max: $('max-runs').value,
        every: everyText(), anchor: $('anchor').value, dates: excludeDates,
        gap: $('dst-gap').value, repeat: $('dst-repeat').value,
    });
}

function buildPayload() {
    clearErrors();
    let ok = true;
    const flowUrl = $('flow').value;
    if (!flowUrl) { showError('flow_url', 'Choose the agent to run.'); ok = false; }
    const body = {
        flow_url: flowUrl,
        title: $('title').value.trim() || null,
        schedule_type: kind(),
        timezone: $('timezone').value,
        catchup: document.querySelector('input[name=catchup]:checked').value,
        overlap: document.querySelector('input[name=overlap]:checked').value,
    };
    const windowText = $('catchup-window').value.trim();
    body.catchup_window = windowText ? Number(windowText) : 60;
    if (!(Number.isInteger(body.catchup_window) && body.catchup_window >= 1)) {
        showError('catchup_window', 'A whole number of seconds, at least 1.'); ok = false;
    }
    body.timeout = wholeOrNull('timeout', 'timeout', 1, 'A whole number of seconds, at least 1, or empty.');
    body.hook_inputs = $('hook-inputs').checked;
    if (body.schedule_type === 'once') {
        const date = $('run-date').value;
        const time = $('run-time').value;
        if (!date || !time) { showError('run_at', 'Pick the date and the time to run at.'); ok = false; }
        body.run_at = `${date}T${time}`;
        body.end_at = null;
        body.max_runs = null;
        body.jitter = null;
        body.pause_after_failures = null;
    } else {
        if (body.schedule_type === 'cron') {
            if (preset() !== 'custom' && !cronFromPreset()) ok = false;
            const cron = $('cron').value.trim();
            if (!cron) { showError('cron_expression', 'Enter when to run, as a cron expression.'); ok = false; }
            body.cron_expression = cron;
            body.dst_policy = dstPolicy();
        } else {
            body.every = everyText();
            if (!body.every) { showError('every', 'Enter how often, e.g. 90 minutes.'); ok = false; }
            body.anchor = $('anchor').value || null;
        }
        body.exclude_dates = excludeDates;
        body.jitter = wholeOrNull('jitter', 'jitter', 0, 'A whole number of seconds (0 to 86400), or empty.');
        body.pause_after_failures = wholeOrNull('pause-after', 'pause_after_failures', 1, 'A whole number of at least 1, or empty.');
        body.end_at = $('end-at').value || null;
        const max = $('max-runs').value.trim();
        body.max_runs = max ? Number(max) : null;
        if (max && !(Number.isInteger(body.max_runs) && body.max_runs >= 1)) {
            showError('max_runs', 'A whole number of at least 1, or empty.'); ok = false;
        }
    }
    if (Object.values(body).includes(undefined)) ok = false;
    const inputs = collectInputs();
    if (inputs === null) ok = false;
    body.inputs = inputs;
    if (!ok) {
        const first = document.querySelector('.fld-error:not(:empty)');
        if (first) first.scrollIntoView({ block: 'center' });
        return null;
    }
    if (MODE === 'edit') {
        body.version = EXISTING.version;
        if (timingSnapshot() === timingAtLoad) {
            /* unchanged timing is not sent: a done once-schedule keeps its past run_at */
            for (const key of ['schedule_type', 'run_at', 'cron_expression', 'timezone', 'end_at', 'max_runs',
                               'every', 'anchor', 'exclude_dates', 'dst_policy']) delete body[key];
        }
        if (flowUrl === flowAtLoad) {
            delete body.flow_url;
        } else {
            const flow = flows.find(f => f.url === flowUrl);
            if (flow && flow.summary) body.expose_name = flow.summary;
        }
    } else {
        for (const key of ['end_at', 'max_runs', 'anchor', 'dst_policy', 'jitter', 'timeout', 'pause_after_failures']) {
            if (body[key] === null) delete body[key];
        }
    }
    return body;
}

async function submit(event) {
    event.preventDefault();
    const body = buildPayload();
    if (!body) return;
    const button = $('submit-button');
    button.disabled = true;
    const res = MODE === 'edit'
        ? await SCHED.api('PUT', `/schedule/${EXISTING.id}`, body)
        : await SCHED.api('POST', '/schedule/', body);
    button.disabled = false;
    if (res.ok) {
        const s = res.data;
        const next = s.next_run ? ` Next run: ${SCHED.fmt(s.next_run, undefined, true)}.` : '';
        const notes = (s.notes || []).length ? ' ' + s.notes.join(' ') : '';
        SCHED.flash((MODE === 'edit' ? 'Saved.' : 'Scheduled.') + next + notes);
        window.location.href = `/admin/schedule/${s.id}`;
        return;
    }
    const data = res.data || {};
    if (res.status === 409 && data.field === 'version') {
        $('form-error-text').innerHTML = `${SCHED.esc(data.detail)} <a class="text-link" href="">Reload</a> (your changes here are lost).`;
        $('form-error').hidden = false;
        $('form-error').scrollIntoView({ block: 'center' });
        return;
    }
    showError(data.field, data.detail || `The schedule could not be saved (HTTP ${res.status}).`, true);
}

/* ------------------------------------------------------------------ start */

function defaultOnce() {
    const at = new Date(Date.now() + 60 * 60 * 1000);
    at.setMinutes(0, 0, 0);
    at.setHours(at.getHours() + 1);
    return wallTime(at.toISOString(), SCHED.viewerZone);
}

document.addEventListener('DOMContentLoaded', async () => {
    const s = EXISTING;
    fillZones(s ? s.timezone : SCHED.viewerZone);
    if (s) {
        $('title').value = s.title || '';
        setKind(s.schedule_type);
        if (s.run_at) {
            const wall = wallTime(s.run_at, s.timezone);
            $('run-date').value = wall.date;
            $('run-time').value = wall.time;
        } else {
            const wall = defaultOnce();
            $('run-date').value = wall.date;
            $('run-time').value = wall.time;
        }
        if (s.cron_expression) {
            $('cron').value = s.cron_expression;
            presetFromCron(s.cron_expression);
        }
        document.querySelector(`input[name=catchup][value=${s.catchup}]`).checked = true;
        document.querySelector(`input[name=overlap][value=${s.overlap}]`).checked = true;
        if (s.end_at) {
            const wall = wallTime(s.end_at, s.timezone);
            $('end-at').value = `${wall.date}T${wall.time}`;
        }
        if (s.max_runs) $('max-runs').value = s.max_runs;
        $('catchup-window').value = s.catchup_window ?? 60;
        if (s.every) setEvery(s.every);
        if (s.anchor) $('anchor').value = localInput(s.anchor, s.timezone);
        excludeDates = [...(s.exclude_dates || [])].sort();
        renderDates();
        $('dst-gap').value = s.dst_policy?.gap || '';
        $('dst-repeat').value = s.dst_policy?.repeat || '';
        $('jitter').value = s.jitter ?? '';
        $('timeout').value = s.timeout ?? '';
        $('pause-after').value = s.pause_after_failures ?? '';
        $('hook-inputs').checked = !!s.hook_inputs;
        if (s.catchup !== 'once' || s.overlap !== 'skip' || s.end_at || s.max_runs
            || (s.catchup_window ?? 60) !== 60 || excludeDates.length || s.dst_policy?.gap
            || s.dst_policy?.repeat || s.jitter || s.timeout || s.pause_after_failures
            || s.hook_inputs) $('advanced').open = true;
    } else {
        const wall = defaultOnce();
        $('run-date').value = wall.date;
        $('run-time').value = wall.time;
        setKind('once');
        setPreset('daily');
    }
    timingAtLoad = timingSnapshot();
    flowAtLoad = s ? s.flow_url : null;

    for (const radio of document.querySelectorAll('input[name=kind]')) {
        radio.addEventListener('change', () => { setKind(kind()); schedulePreview(); });
    }
    for (const radio of document.querySelectorAll('input[name=preset]')) {
        radio.addEventListener('change', () => {
            setPreset(preset());
            if (preset() === 'custom') $('cron').focus(); else onPresetInput();
        });
    }
    for (const id of ['hourly-minute', 'daily-time', 'weekly-time', 'monthly-day', 'monthly-time']) {
        $(id).addEventListener('input', onPresetInput);
        $(id).addEventListener('change', onPresetInput);
    }
    for (const box of document.querySelectorAll('input[name=weekday]')) box.addEventListener('change', onPresetInput);
    $('cron').addEventListener('input', () => { presetFromCron($('cron').value); schedulePreview(); });
    for (const id of ['run-date', 'run-time', 'timezone', 'every-count', 'every-unit', 'anchor', 'dst-gap', 'dst-repeat', 'jitter']) {
        $(id).addEventListener('input', schedulePreview);
        $(id).addEventListener('change', schedulePreview);
    }
    const fieldOf = { 'end-at': 'end_at', 'max-runs': 'max_runs', 'catchup-window': 'catchup_window',
                      'pause-after': 'pause_after_failures', 'exclude-date': 'exclude_dates' };
    for (const id of ['title', 'end-at', 'max-runs', 'catchup-window', 'timeout', 'pause-after', 'exclude-date']) {
        $(id).addEventListener('input', () => clearErrors([fieldOf[id] || id]));
    }
    $('timezone').addEventListener('change', () => { if ($('describe-text').value.trim()) scheduleDescribe(); });
    $('describe-text').addEventListener('input', scheduleDescribe);
    $('describe-text').addEventListener('keydown', (event) => {
        /* Enter here uses the rule read from the words, never submits the schedule */
        if (event.key !== 'Enter' || event.isComposing) return;
        event.preventDefault();
        if (describedRule) useDescribed(); else { clearTimeout(describeTimer); runDescribe(); }
    });
    $('describe-use').addEventListener('click', useDescribed);
    $('exclude-add').addEventListener('click', addDate);
    $('exclude-date').addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && !event.isComposing) { event.preventDefault(); addDate(); }
    });
    $('exclude-list').addEventListener('click', (event) => {
        const item = event.target.closest('li[data-date]');
        if (!item || !event.target.closest('button')) return;
        excludeDates = excludeDates.filter(d => d !== item.dataset.date);
        renderDates();
        schedulePreview();
    });
    $('flow').addEventListener('change', () => {
        clearErrors(['flow_url', 'inputs']);
        describeFlow();
        const values = inputsView === 'json' ? null : collectFormInputs();
        loadAgentForm($('flow').value, values || undefined);
    });
    $('view-form').addEventListener('click', () => setView('form'));
    $('view-json').addEventListener('click', () => setView('json'));
    $('inputs-json').addEventListener('input', () => clearErrors(['inputs']));
    $('schedule-form').addEventListener('submit', submit);
    $('inputs-form').addEventListener('submit', (event) => event.preventDefault());

    schedulePreview();
    const selected = s ? s.flow_url : PRESET_FLOW;
    await loadFlows(selected);
    if (selected) await loadAgentForm(selected, s ? s.inputs : undefined);
    if (s && Object.keys(extraInputs).length) {
        setView('json', s.inputs);
        $('err-inputs').textContent = 'Some saved inputs are not fields of the agent’s form any more; remove them here, or saving is refused.';
    }
});

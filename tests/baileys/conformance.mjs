// Baileys, a second and independent WhatsApp client, through every
// linked-device flow against the wa-sim binary, at 0 and 30 ms of
// simulator latency. Prints each flow's outcome and time; exits 1 on any
// mismatch. Only ever connects to 127.0.0.1.
//
//   node conformance.mjs [--sim PATH] [--flow NAME] [--latency MS]
import './loopback-guard.mjs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { flows } from './flows.mjs';
import { Sim } from './sim.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const FLOW_TIMEOUT_MS = 60_000;

const { values: options } = parseArgs({
    options: {
        sim: { type: 'string', default: resolve(here, '../../target/debug/wa-sim') },
        flow: { type: 'string', multiple: true },
        latency: { type: 'string', multiple: true },
    },
});
const latencies = (options.latency ?? ['0', '30']).map(Number);
const names = options.flow ?? Object.keys(flows);
for (const name of names) {
    if (!flows[name]) {
        console.error(`unknown flow ${name}; flows: ${Object.keys(flows).join(', ')}`);
        process.exit(2);
    }
}

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One flow on a fresh simulator; the simulator must record no failed session. */
async function runFlow(name, latency) {
    const sim = await Sim.start(options.sim);
    try {
        await sim.fault({ fault: 'latency', ms: latency });
        const started = performance.now();
        await withTimeout(flows[name](sim), FLOW_TIMEOUT_MS, name);
        const ms = performance.now() - started;
        const failed = (await sim.events()).filter(e => e.event === 'session_failed');
        if (failed.length > 0) {
            throw new Error(`the simulator recorded failed sessions: ${JSON.stringify(failed)}`);
        }
        return ms;
    } finally {
        await sim.stop();
    }
}

let failures = 0;
const rows = [];
for (const latency of latencies) {
    for (const name of names) {
        try {
            const ms = await runFlow(name, latency);
            rows.push({ name, latency, ok: true, ms });
            console.log(`ok    ${name.padEnd(34)} ${String(latency).padStart(3)} ms latency  ${ms.toFixed(0).padStart(6)} ms`);
        } catch (error) {
            failures += 1;
            rows.push({ name, latency, ok: false });
            console.log(`FAIL  ${name.padEnd(34)} ${String(latency).padStart(3)} ms latency  ${error.message}`);
        }
    }
}
console.log(`\n${rows.length - failures} of ${rows.length} flows passed (Baileys against wa-sim)`);
process.exit(failures === 0 ? 0 : 1);

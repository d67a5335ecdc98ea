// The wa-sim binary as a child process, and its control API (loopback only).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const START_TIMEOUT_MS = 10_000;

function assertLoopback(url) {
    const { hostname } = new URL(url);
    if (hostname !== '127.0.0.1') {
        throw new Error(`wa-sim gave a non-loopback address: ${url}`);
    }
    return url;
}

export class Sim {
    static async start(binary) {
        const child = spawn(binary, ['--listen', '127.0.0.1:0', '--control', '127.0.0.1:0'], {
            stdio: ['ignore', 'pipe', 'inherit'],
        });
        const lines = createInterface({ input: child.stdout });
        const ready = await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('wa-sim did not start')), START_TIMEOUT_MS);
            child.once('error', reject);
            child.once('exit', code => reject(new Error(`wa-sim exited with ${code}`)));
            lines.once('line', line => {
                clearTimeout(timer);
                resolve(JSON.parse(line));
            });
        });
        return new Sim(child, ready);
    }

    constructor(child, ready) {
        this.child = child;
        this.wsUrl = assertLoopback(ready.ws_url);
        this.controlUrl = assertLoopback(ready.control_url);
        this.certRootKey = Buffer.from(ready.cert_root_key, 'base64');
    }

    async stop() {
        if (this.child.exitCode !== null) {
            return;
        }
        const exited = new Promise(resolve => this.child.once('exit', resolve));
        this.child.kill('SIGTERM');
        await exited;
    }

    /** `{status, body}` of a control API call. */
    async call(method, path, body) {
        const response = await fetch(this.controlUrl + path, {
            method,
            headers: body === undefined ? {} : { 'content-type': 'application/json' },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await response.text();
        return { status: response.status, body: text ? JSON.parse(text) : null };
    }

    async ok(method, path, body) {
        const { status, body: answer } = await this.call(method, path, body);
        if (status !== 200) {
            throw new Error(`${method} ${path} answered ${status} ${JSON.stringify(answer)}`);
        }
        return answer;
    }

    fault(fault) {
        return this.ok('POST', '/faults', fault);
    }

    events() {
        return this.ok('GET', '/events');
    }

    devices(phone) {
        return this.ok('GET', `/phones/${phone}/devices`);
    }

    waitOnline(jid) {
        return this.ok('POST', '/wait', { online: jid });
    }

    waitOffline(jid) {
        return this.ok('POST', '/wait', { offline: jid });
    }
}

// One Baileys companion: its credentials in a folder (Baileys' own
// multi-file auth state, so a reconnect uses what was saved), and a socket
// to the simulator whose connection updates can be awaited in order.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import makeWASocket, { Browsers, useMultiFileAuthState, WA_CERT_DETAILS } from '@whiskeysockets/baileys';

const WAIT_MS = 20_000;

/** A Baileys logger that keeps warnings and errors for the failure report. */
function recordingLogger(sink) {
    const keep = level => (obj, msg) => sink.push({ level, msg: typeof obj === 'string' ? obj : msg });
    const logger = {
        level: 'info',
        trace() {},
        debug() {},
        info() {},
        warn: keep('warn'),
        error: keep('error'),
        fatal: keep('fatal'),
        child: () => logger,
    };
    return logger;
}

export class Companion {
    static async create() {
        const dir = await mkdtemp(join(tmpdir(), 'wa-sim-baileys-'));
        return new Companion(dir);
    }

    constructor(dir) {
        this.dir = dir;
        this.log = [];
        this.sock = null;
        // Baileys does not await its credential saves; a new socket must
        // read what the last one saved.
        this.saving = Promise.resolve();
    }

    /** Opens a socket to `sim` with the saved credentials. */
    async connect(sim) {
        // The simulator signs its certificate chain with a root of its own;
        // Baileys verifies the chain against this key (WhatsApp's root
        // otherwise), so the signatures are checked for real.
        WA_CERT_DETAILS.PUBLIC_KEY = sim.certRootKey;
        await this.saving;
        const { state, saveCreds } = await useMultiFileAuthState(this.dir);
        this.state = state;
        this.updates = [];
        this.waiters = [];
        const sock = makeWASocket({
            auth: state,
            waWebSocketUrl: sim.wsUrl,
            logger: recordingLogger(this.log),
            browser: Browsers.ubuntu('Chrome'),
            markOnlineOnConnect: false,
            syncFullHistory: false,
            connectTimeoutMs: WAIT_MS,
        });
        sock.ev.on('creds.update', () => {
            this.saving = this.saving.then(saveCreds);
        });
        sock.ev.on('connection.update', update => {
            this.updates.push(update);
            for (const waiter of [...this.waiters]) {
                waiter();
            }
        });
        this.sock = sock;
        return sock;
    }

    /**
     * The first connection update since the socket opened that `matches`,
     * in order; fails after `ms`.
     */
    next(what, matches, ms = WAIT_MS) {
        return new Promise((resolve, reject) => {
            const check = () => {
                const found = this.updates.find(matches);
                if (found) {
                    cleanup();
                    resolve(found);
                }
            };
            const timer = setTimeout(() => {
                cleanup();
                const seen = this.updates.map(u => JSON.stringify(summary(u))).join(', ');
                reject(new Error(`Baileys: no ${what} within ${ms} ms (updates: ${seen})`));
            }, ms);
            const cleanup = () => {
                clearTimeout(timer);
                this.waiters = this.waiters.filter(w => w !== check);
            };
            this.waiters.push(check);
            check();
        });
    }

    qr() {
        return this.next('QR code', u => typeof u.qr === 'string').then(u => u.qr);
    }

    open() {
        return this.next('open connection', u => u.connection === 'open');
    }

    /** The status code the connection closed with. */
    async closed() {
        const update = await this.next('closed connection', u => u.connection === 'close');
        return update.lastDisconnect?.error?.output?.statusCode;
    }

    /** Ends the socket (if still open) and waits until it is closed. */
    async end() {
        if (!this.sock) {
            return;
        }
        const sock = this.sock;
        this.sock = null;
        if (!this.updates.some(u => u.connection === 'close')) {
            sock.end(undefined);
            await this.closed();
        }
        sock.ev.removeAllListeners();
        await this.saving;
    }

    async dispose() {
        await this.end();
        await rm(this.dir, { recursive: true, force: true });
    }
}

/** An update without its QR payload (never printed). */
function summary(update) {
    const { qr, lastDisconnect, ...rest } = update;
    return {
        ...rest,
        ...(qr ? { qr: '(hidden)' } : {}),
        ...(lastDisconnect ? { status: lastDisconnect.error?.output?.statusCode } : {}),
    };
}

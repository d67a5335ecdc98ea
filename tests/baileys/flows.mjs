// Every linked-device flow, driven with Baileys against one fresh simulator.
// Each throws on the first thing that differs from what WhatsApp does.
import { Companion } from './client.mjs';

export const PHONE = '15551234567';
const QR_LINK = 'https://wa.me/settings/linked_devices#';
const POLL_MS = 20;
const WAIT_MS = 20_000;

function check(condition, what) {
    if (!condition) {
        throw new Error(what);
    }
}

function expectEqual(actual, expected, what) {
    check(actual === expected, `${what}: expected ${expected}, got ${actual}`);
}

/** Waits until the simulator has recorded an event that `matches`. */
async function simEvent(sim, what, matches) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        const found = (await sim.events()).find(matches);
        if (found) {
            return found;
        }
        check(Date.now() < deadline, `the simulator never recorded ${what}`);
        await new Promise(resolve => setTimeout(resolve, POLL_MS));
    }
}

/** After a pairing: the 515 restart, then a login with the new identity. */
async function loginAfterPairing(sim, companion, jid) {
    expectEqual(await companion.closed(), 515, 'close code after pair-success (restart required)');
    await companion.end();
    await companion.connect(sim);
    await companion.open();
    await sim.waitOnline(jid);
    expectEqual(companion.state.creds.me?.id?.split('@')[0].split(':')[0], PHONE, 'Baileys account');
}

/** A companion linked by QR code and logged in. */
async function linkedByQr(sim) {
    const companion = await Companion.create();
    await companion.connect(sim);
    const qr = await companion.qr();
    check(qr.startsWith(QR_LINK), 'Baileys shows the QR code in its link form');
    expectEqual(qr.slice(QR_LINK.length).split(',').length, 5, 'QR fields');
    const { jid } = await sim.ok('POST', `/phones/${PHONE}/scan`, { qr });
    await loginAfterPairing(sim, companion, jid);
    await simEvent(sim, `${jid} paired by QR`, e => e.event === 'paired' && e.jid === jid && e.with === 'qr');
    return { companion, jid };
}

/** Credentials of `companion` used again in a new socket, as after a restart. */
async function reopened(sim, companion) {
    await companion.end();
    const again = new Companion(companion.dir);
    await again.connect(sim);
    return again;
}

async function requestCode(sim, companion) {
    await companion.connect(sim);
    await companion.qr();
    const code = await companion.sock.requestPairingCode(PHONE);
    check(/^[A-Z0-9]{8}$/.test(code), 'Baileys pairing code has 8 characters');
    // The user types the code once the phone has it on screen; the server
    // must have taken the companion's request by then.
    await simEvent(sim, 'the pairing code request', e => e.event === 'pairing_code_requested' && e.phone === PHONE);
    return code;
}

export const flows = {
    async qr_pairing(sim) {
        const { companion } = await linkedByQr(sim);
        await companion.dispose();
    },

    async pairing_code(sim) {
        const companion = await Companion.create();
        const code = await requestCode(sim, companion);
        const { jid } = await sim.ok('POST', `/phones/${PHONE}/code`, { code });
        await loginAfterPairing(sim, companion, jid);
        await simEvent(sim, `${jid} paired by code`, e => e.event === 'paired' && e.jid === jid && e.with === 'code');
        await companion.dispose();
    },

    async wrong_pairing_code(sim) {
        const companion = await Companion.create();
        const code = await requestCode(sim, companion);
        const wrong = code.slice(0, 7) + (code[7] === 'A' ? 'B' : 'A');
        const { status, body } = await sim.call('POST', `/phones/${PHONE}/code`, { code: wrong });
        expectEqual(status, 409, 'status of a wrong code typed on the phone');
        expectEqual(body.error, 'wrong_code', 'refusal of a wrong code');
        expectEqual((await sim.devices(PHONE)).length, 0, 'devices linked after a wrong code');
        check(!companion.updates.some(u => u.connection === 'open' || u.isNewLogin), 'Baileys did not log in');
        await companion.dispose();
    },

    async reconnect_with_saved_credentials(sim) {
        const { companion, jid } = await linkedByQr(sim);
        await sim.waitOnline(jid);
        const again = await reopened(sim, companion);
        await again.open();
        await sim.waitOnline(jid);
        const logins = (await sim.events()).filter(e => e.event === 'logged_in' && e.jid === jid);
        expectEqual(logins.length, 2, 'logins of the device (after pairing, after reconnect)');
        await again.dispose();
    },

    async logout(sim) {
        const { companion, jid } = await linkedByQr(sim);
        await companion.sock.logout();
        expectEqual(await companion.closed(), 401, 'close code after logout');
        await simEvent(sim, `${jid} unlinked by the companion`, e => e.event === 'unlinked' && e.jid === jid && e.by === 'companion');
        check(!(await sim.devices(PHONE)).some(d => d.jid === jid), 'the phone no longer lists the device');
        await refusedWith401(sim, companion, jid);
    },

    async device_removed_from_phone(sim) {
        const { companion, jid } = await linkedByQr(sim);
        await sim.ok('DELETE', `/phones/${PHONE}/devices/${encodeURIComponent(jid)}`);
        expectEqual(await companion.closed(), 401, 'close code when the phone removes the device (logged out)');
        await refusedWith401(sim, companion, jid);
    },

    async replaced(sim) {
        const { companion, jid } = await linkedByQr(sim);
        await sim.fault({ fault: 'replace', jid });
        expectEqual(await companion.closed(), 440, 'close code when another login replaces the stream');
        await companion.dispose();
    },

    async temporary_ban(sim) {
        const { companion, jid } = await linkedByQr(sim);
        await sim.fault({ fault: 'ban', jid, seconds: 3600, code: 101 });
        await companion.closed();
        const again = await reopened(sim, companion);
        const update = await again.next('closed connection', u => u.connection === 'close');
        const error = update.lastDisconnect?.error;
        expectEqual(error?.output?.statusCode, 402, 'close code of a banned login');
        expectEqual(error?.data?.code, '101', 'ban code');
        check(Number(error?.data?.expire) > 3500, 'ban expiry in seconds');
        await again.dispose();
    },

    async client_outdated(sim) {
        const { companion } = await linkedByQr(sim);
        await sim.fault({ fault: 'client_outdated', on: true });
        await companion.closed();
        const again = await reopened(sim, companion);
        expectEqual(await again.closed(), 405, 'close code of an outdated client');
        await again.dispose();
    },
};

async function refusedWith401(sim, companion, jid) {
    const again = await reopened(sim, companion);
    expectEqual(await again.closed(), 401, 'close code of a login with old credentials');
    const [user, device] = jid.split('@')[0].split(':');
    await simEvent(sim, 'the refused login', e => e.event === 'login_refused' && e.phone === user && String(e.device) === device && e.reason === 401);
    await again.dispose();
}

// Refuses every TCP connection to anything but 127.0.0.1 (or ::1), for the
// whole process: the suite must never reach WhatsApp or any other host,
// whatever Baileys would try on its own. Imported before anything else.
import net from 'node:net';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const connect = net.Socket.prototype.connect;

net.Socket.prototype.connect = function guardedConnect(...args) {
    const [first] = args;
    const options = Array.isArray(first) ? first[0] : first;
    if (typeof options === 'object' && options !== null && !options.path) {
        const host = options.host ?? 'localhost';
        if (!LOOPBACK.has(host)) {
            throw new Error(`loopback guard: refused a connection to ${host}`);
        }
    } else if (typeof options === 'number') {
        const host = typeof args[1] === 'string' ? args[1] : 'localhost';
        if (!LOOPBACK.has(host)) {
            throw new Error(`loopback guard: refused a connection to ${host}`);
        }
    }
    return connect.apply(this, args);
};

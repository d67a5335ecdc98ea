// Short messages in the corner: results of actions and notices from WhatsApp.

export type ToastKind = "success" | "info" | "warning" | "error";
export interface Toast {
  id: number;
  kind: ToastKind;
  text: string;
}

export class ToastQueue {
  items: Toast[] = $state([]);
  #next = 1;

  /** Shows `text`; it goes away after `ms` (warnings and errors stay longer). */
  push(kind: ToastKind, text: string, ms = kind === "success" || kind === "info" ? 6000 : 15000) {
    const id = this.#next++;
    this.items.push({ id, kind, text });
    setTimeout(() => this.dismiss(id), ms);
    return id;
  }

  dismiss(id: number) {
    this.items = this.items.filter((toast) => toast.id !== id);
  }
}

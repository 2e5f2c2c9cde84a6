/**
 * ipynetviz in JupyterLab 4 (and Notebook 7): the bundled notebooks as launcher tiles, command palette entries
 * and Help menu items. Choosing one asks the server extension to copy it into the file browser's current folder
 * (never over an existing file) and opens the copy.
 *
 * The widgets themselves stay plain ipywidgets/anywidget, so nothing here is needed where no extension can be
 * installed (Colab, VS Code).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

const COMMAND = 'ipynetviz:copy-notebook';
const CATEGORY = 'ipynetviz';

interface IBundledNotebook {
  name: string;
  file: string;
  title: string;
}

interface ICopyReply {
  path?: string;
  message?: string;
}

const ICON = new LabIcon({
  name: 'ipynetviz:logo',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="4" width="5" height="5" rx="1"/><rect x="2" y="15" width="5" height="5" rx="1"/>' +
    '<rect x="10" y="9.5" width="5" height="5" rx="1"/><rect x="18" y="9.5" width="4" height="5" rx="1"/>' +
    '<path d="M7 6.5 10 11M7 17.5 10 13M15 12h3" stroke="#616161" stroke-width="1.2"/></g></svg>'
});

async function request(path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  // ServerConnection adds the token and the XSRF header the server checks
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(
    URLExt.join(settings.baseUrl, 'ipynetviz', 'notebooks', path),
    init,
    settings
  );
  let body: any = {};
  try {
    body = await response.json();
  } catch {
    body = { message: `${response.status} ${response.statusText}` };
  }
  return { status: response.status, body };
}

/** Copy notebook `name` into `cwd` (the launcher's folder) or the file browser's folder; open it and return
 * the document widget, so a launcher replaces itself with it like JupyterLab's own tiles do. */
async function copyAndOpen(
  app: JupyterFrontEnd,
  browser: IDefaultFileBrowser | null,
  name: string,
  cwd?: string
): Promise<unknown> {
  const contents = app.serviceManager.contents;
  const folder = contents.localPath(cwd ?? browser?.model.path ?? '');
  const copy = (rename: boolean) =>
    request('copy', { method: 'POST', body: JSON.stringify({ name, folder, rename }) });
  let { status, body } = await copy(false);
  let reply = body as ICopyReply;
  if (status === 409 && reply.path) {
    const choice = await showDialog({
      title: 'This notebook is already here',
      body: `${reply.message}. Open it, or make a new copy beside it?`,
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: 'New copy', ariaLabel: 'New copy' }),
        Dialog.okButton({ label: 'Open it', ariaLabel: 'Open it' })
      ]
    });
    if (!choice.button.accept) {
      return undefined;
    }
    if (choice.button.label === 'New copy') {
      ({ status, body } = await copy(true));
      reply = body as ICopyReply;
    } else {
      status = 200;
    }
  }
  if ((status === 200 || status === 201) && reply.path) {
    if (browser) {
      void browser.model.refresh();
    }
    return app.commands.execute('docmanager:open', { path: reply.path });
  }
  await showErrorMessage('Cannot copy the notebook', reply.message ?? `server answered ${status}`);
  return undefined;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ipynetviz:launcher',
  description: "Launcher tiles, palette entries and Help menu items for ipynetviz's notebooks",
  autoStart: true,
  optional: [ILauncher, ICommandPalette, IMainMenu, IDefaultFileBrowser],
  activate: async (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    menu: IMainMenu | null,
    browser: IDefaultFileBrowser | null
  ) => {
    if (!launcher && !palette && !menu) {
      return; // e.g. Voila: nowhere to show the notebooks, so no request either
    }
    const titles = new Map<string, string>();
    app.commands.addCommand(COMMAND, {
      label: args => (args.title as string) ?? titles.get(args.name as string) ?? 'ipynetviz notebook',
      caption: args => `Copy ipynetviz's ${args.name} notebook into the current folder and open it`,
      icon: args => (args.isPalette ? undefined : ICON),
      execute: args => copyAndOpen(app, browser, args.name as string, args.cwd as string | undefined)
    });
    let notebooks: IBundledNotebook[];
    try {
      const { status, body } = await request('');
      if (status !== 200) {
        console.warn(`ipynetviz: the server extension did not list the notebooks (${status}): ${body.message}`);
        return;
      }
      notebooks = body.notebooks;
    } catch (err) {
      console.warn('ipynetviz: the server extension is not reachable; no launcher tiles', err);
      return;
    }
    notebooks.forEach((nb, rank) => {
      titles.set(nb.name, nb.title);
      const args = { name: nb.name, title: nb.title };
      launcher?.add({ command: COMMAND, args, category: CATEGORY, rank });
      palette?.addItem({ command: COMMAND, args: { ...args, isPalette: true }, category: CATEGORY, rank });
    });
    menu?.helpMenu.addGroup(
      notebooks.map(nb => ({ command: COMMAND, args: { name: nb.name, title: `ipynetviz: ${nb.title}` } })),
      30
    );
  }
};

export default plugin;

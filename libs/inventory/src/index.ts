export { HostSet, expandRange, foldNames, isPattern, splitTopLevel, PatternError, MAX_EXPANSION } from './ranges';
export {
  type Inventory,
  type HostFields,
  type HostField,
  type HostOrigin,
  HOST_FIELDS,
  InventoryView,
  loadInventory,
  defaultInventory,
  resolveInventoryPath,
  defaultInventoryPath,
  newInventoryPath,
  createdInventoryNote,
  parseInventory,
} from './load';
export { InventoryFile } from './file';
export { checkHosts, classifySshError, parseProbe, PROBE_COMMAND, type CheckRecord, type CheckOptions } from './check';
export { parseSshConfig, parseVagrantSshConfig, toSshConfig, vagrantFields, type ImportedHost, type ImportResult } from './sshconfig';
export { hostsTable, checkTable } from './table';
export { InventoryFileSchema, InventoryHost } from './schema';
export { parseAssignments, type Assignments } from './edit';

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
  parseInventory,
} from './load';
export { InventoryFile } from './file';

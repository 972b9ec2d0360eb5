import { describe, expect, it } from "vitest";
import {
  classFromFolder,
  classFromFolderNotice,
  GENERIC_FOLDER_WORDS,
  requireClassFromFolder,
} from "../src/dataset/captions.js";
import { UserError } from "../src/errors.js";

describe("classFromFolder", () => {
  it.each([
    ["my-cat", "cat"],
    ["toy_robot", "robot"],
    ["/home/someone/Pictures/Mochi the CAT", "cat"],
    ["cat photos 2024", "cat"],
    ["IMG_1234 backpack", "backpack"],
    ["photos of my dog", "dog"],
    ["./sneakers/", "sneakers"],
    ["Kätzchen", "kätzchen"],
  ])("%s → %s (the last word that names something)", (dir, className) => {
    expect(classFromFolder(dir)).toEqual({ className });
  });

  it.each([
    "photos",
    "Photos 2024",
    "images",
    "Pictures",
    "camera",
    "Camera Roll",
    "DCIM",
    "DCIM_100",
    "100APPLE",
    "101MSDCF",
    "100_FUJI",
    "Downloads",
    "download",
    "untitled folder",
    "New Folder",
    "2024-05-01",
    "20240501_123456",
    "12",
    "IMG_1234",
    "IMG-20240501-WA0001",
    "DSC01234",
    "PXL_20240501_093012345",
    "May 2024",
    "my photos",
  ])("%s says nothing about the subject", (dir) => {
    expect(classFromFolder(`/somewhere/${dir}`)).toEqual({ generic: dir });
  });

  it("lists the generic words in lower case", () => {
    for (const w of GENERIC_FOLDER_WORDS) expect(w).toBe(w.toLowerCase());
    expect(GENERIC_FOLDER_WORDS.has("photos")).toBe(true);
    expect(GENERIC_FOLDER_WORDS.has("cat")).toBe(false);
  });
});

describe("requireClassFromFolder", () => {
  it("gives the class noun, or one line asking for --class", () => {
    expect(requireClassFromFolder("/x/my-cat")).toBe("cat");
    expect(() => requireClassFromFolder("/x/Photos 2024")).toThrow(UserError);
    try {
      requireClassFromFolder("/x/Photos 2024");
    } catch (error) {
      expect((error as UserError).toLine()).toBe(
        'The folder name "Photos 2024" does not say what the subject is — pass its class noun with --class (for example --class cat or --class backpack)',
      );
    }
  });

  it("says in one line which noun was taken and how to change it", () => {
    const line = classFromFolderNotice("cat", "/x/my-cat");
    expect(line).toBe('class: "cat", taken from the folder name "my-cat" (pass --class to change it)');
    expect(line).not.toContain("\n");
  });
});

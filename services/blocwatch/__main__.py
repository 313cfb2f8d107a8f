from blocwatch.cli import main

# Guarded: the processor's tagging processes are spawned, and spawn imports the main module.
if __name__ == "__main__":
    raise SystemExit(main())

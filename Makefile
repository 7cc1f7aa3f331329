# Build and install libpasscrow's C library: libpasscrow.so (SONAME
# libpasscrow.so.MAJOR), libpasscrow.a, passcrow.h and passcrow.pc.
#
#   make                              # cargo build --release --features capi
#   sudo make install                 # into /usr/local
#   make install PREFIX=/usr DESTDIR=/tmp/stage
#   make header                       # regenerate include/passcrow.h
#
# Then: cc app.c $(pkg-config --cflags --libs passcrow)
# (set PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a non-standard PREFIX).

PREFIX      ?= /usr/local
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR     ?=
CARGO       ?= cargo
# How the library is built, and where cargo puts it.
CARGO_FLAGS ?= --release --features capi
BUILD_DIR   ?= $(or $(CARGO_TARGET_DIR),target)/release
# What a static link needs besides libpasscrow.a
# (cargo rustc --lib -- --print native-static-libs).
LIBS_PRIVATE ?= -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
INSTALL ?= install

.PHONY: all lib header install uninstall

all: lib

lib:
	$(CARGO) build --lib $(CARGO_FLAGS)

header:
	PASSCROW_WRITE_HEADER=1 $(CARGO) build --lib --features capi

$(BUILD_DIR)/passcrow.pc: passcrow.pc.in Cargo.toml
	@mkdir -p $(BUILD_DIR)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' passcrow.pc.in > $@

install: lib $(BUILD_DIR)/passcrow.pc
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m 644 include/passcrow.h $(DESTDIR)$(INCLUDEDIR)/passcrow.h
	$(INSTALL) -m 644 $(BUILD_DIR)/libpasscrow.a $(DESTDIR)$(LIBDIR)/libpasscrow.a
	$(INSTALL) -m 755 $(BUILD_DIR)/libpasscrow.so $(DESTDIR)$(LIBDIR)/libpasscrow.so.$(VERSION)
	ln -sf libpasscrow.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpasscrow.so.$(MAJOR)
	ln -sf libpasscrow.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libpasscrow.so
	$(INSTALL) -m 644 $(BUILD_DIR)/passcrow.pc $(DESTDIR)$(PKGCONFIGDIR)/passcrow.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/passcrow.h $(DESTDIR)$(LIBDIR)/libpasscrow.a \
	      $(DESTDIR)$(LIBDIR)/libpasscrow.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/libpasscrow.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libpasscrow.so \
	      $(DESTDIR)$(PKGCONFIGDIR)/passcrow.pc

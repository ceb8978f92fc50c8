# mk/amalgamation.mk — `make amalgamation`: the whole library as one pair of
# files, $(BUILD)/amalgamation/statelite.c and statelite.h, written by
# amalgamation/generate.sh (see README.md, "The amalgamation").

AMALGAMATION_DIR := $(BUILD)/amalgamation
AMALGAMATION_C   := $(AMALGAMATION_DIR)/statelite.c
AMALGAMATION_H   := $(AMALGAMATION_DIR)/statelite.h
AMALGAMATION_IN  := amalgamation/generate.sh include/statelite.h \
                    $(sort $(wildcard base/*.[ch] store/*.[ch] snapshot/*.[ch] sdk/*.[ch]))

AMALGAMATION_DEPS += $(AMALGAMATION_C) $(AMALGAMATION_H)

$(AMALGAMATION_C): $(AMALGAMATION_IN)
	sh amalgamation/generate.sh $(AMALGAMATION_DIR)

$(AMALGAMATION_H): $(AMALGAMATION_C)
	@test -f $@ || sh amalgamation/generate.sh $(AMALGAMATION_DIR)
